from llama.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextCompletionRequest(_message.Message):
    __slots__ = ("prompts", "temperature", "top_p", "max_gen_len", "logprobs", "echo", "seed", "stop", "ignore_eos")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    temperature: float
    top_p: float
    max_gen_len: int
    logprobs: bool
    echo: bool
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    ignore_eos: bool
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_gen_len: _Optional[int] = ..., logprobs: _Optional[bool] = ..., echo: _Optional[bool] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class CompletionPrediction(_message.Message):
    __slots__ = ("generation", "tokens", "logprobs", "finish_reason", "prompt_token_count", "generation_token_count")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    generation: str
    tokens: _containers.RepeatedScalarFieldContainer[str]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    prompt_token_count: int
    generation_token_count: int
    def __init__(self, generation: _Optional[str] = ..., tokens: _Optional[_Iterable[str]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ..., prompt_token_count: _Optional[int] = ..., generation_token_count: _Optional[int] = ...) -> None: ...

class TextCompletionResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[CompletionPrediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[CompletionPrediction, _Mapping]]] = ...) -> None: ...

class ChatCompletionRequest(_message.Message):
    __slots__ = ("dialogs", "temperature", "top_p", "max_gen_len", "logprobs", "seed", "stop", "ignore_eos")
    DIALOGS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    dialogs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Dialog]
    temperature: float
    top_p: float
    max_gen_len: int
    logprobs: bool
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    ignore_eos: bool
    def __init__(self, dialogs: _Optional[_Iterable[_Union[_types_pb2.Dialog, _Mapping]]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_gen_len: _Optional[int] = ..., logprobs: _Optional[bool] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class ChatPrediction(_message.Message):
    __slots__ = ("generation", "tokens", "logprobs", "finish_reason", "prompt_token_count", "generation_token_count")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    generation: _types_pb2.Message
    tokens: _containers.RepeatedScalarFieldContainer[str]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    prompt_token_count: int
    generation_token_count: int
    def __init__(self, generation: _Optional[_Union[_types_pb2.Message, _Mapping]] = ..., tokens: _Optional[_Iterable[str]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ..., prompt_token_count: _Optional[int] = ..., generation_token_count: _Optional[int] = ...) -> None: ...

class ChatCompletionResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[ChatPrediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[ChatPrediction, _Mapping]]] = ...) -> None: ...

class StreamTextCompletionRequest(_message.Message):
    __slots__ = ("prompts", "temperature", "top_p", "max_gen_len", "logprobs", "echo", "seed", "stop", "ignore_eos")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    temperature: float
    top_p: float
    max_gen_len: int
    logprobs: bool
    echo: bool
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    ignore_eos: bool
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_gen_len: _Optional[int] = ..., logprobs: _Optional[bool] = ..., echo: _Optional[bool] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class StreamTextCompletionResponse(_message.Message):
    __slots__ = ("index", "text", "tokens", "logprobs", "finish_reason", "token_count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[str]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    token_count: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., tokens: _Optional[_Iterable[str]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ..., token_count: _Optional[int] = ...) -> None: ...

class StreamChatCompletionRequest(_message.Message):
    __slots__ = ("dialogs", "temperature", "top_p", "max_gen_len", "logprobs", "seed", "stop", "ignore_eos")
    DIALOGS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EOS_FIELD_NUMBER: _ClassVar[int]
    dialogs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Dialog]
    temperature: float
    top_p: float
    max_gen_len: int
    logprobs: bool
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    ignore_eos: bool
    def __init__(self, dialogs: _Optional[_Iterable[_Union[_types_pb2.Dialog, _Mapping]]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_gen_len: _Optional[int] = ..., logprobs: _Optional[bool] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., ignore_eos: _Optional[bool] = ...) -> None: ...

class StreamChatCompletionResponse(_message.Message):
    __slots__ = ("index", "text", "tokens", "logprobs", "finish_reason", "role", "token_count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[str]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    role: _types_pb2.Role
    token_count: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., tokens: _Optional[_Iterable[str]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., token_count: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_name", "max_seq_len", "max_batch_size", "vocab_size", "bos_id", "eos_id", "world_size", "dtype", "device", "replicas", "max_stop", "max_stop_bytes", "default_temperature", "default_top_p")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    BOS_ID_FIELD_NUMBER: _ClassVar[int]
    EOS_ID_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_STOP_FIELD_NUMBER: _ClassVar[int]
    MAX_STOP_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TOP_P_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    max_seq_len: int
    max_batch_size: int
    vocab_size: int
    bos_id: int
    eos_id: int
    world_size: int
    dtype: str
    device: str
    replicas: int
    max_stop: int
    max_stop_bytes: int
    default_temperature: float
    default_top_p: float
    def __init__(self, model_name: _Optional[str] = ..., max_seq_len: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., vocab_size: _Optional[int] = ..., bos_id: _Optional[int] = ..., eos_id: _Optional[int] = ..., world_size: _Optional[int] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., replicas: _Optional[int] = ..., max_stop: _Optional[int] = ..., max_stop_bytes: _Optional[int] = ..., default_temperature: _Optional[float] = ..., default_top_p: _Optional[float] = ...) -> None: ...
