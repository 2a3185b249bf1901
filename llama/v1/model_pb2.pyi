from llama.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("prompt_tokens", "max_gen_len", "temperature", "top_p", "logprobs", "echo", "seed", "stop_ids")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_IDS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: _containers.RepeatedCompositeFieldContainer[_types_pb2.TokenIds]
    max_gen_len: int
    temperature: float
    top_p: float
    logprobs: bool
    echo: bool
    seed: int
    stop_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, prompt_tokens: _Optional[_Iterable[_Union[_types_pb2.TokenIds, _Mapping]]] = ..., max_gen_len: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., logprobs: _Optional[bool] = ..., echo: _Optional[bool] = ..., seed: _Optional[int] = ..., stop_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("tokens", "logprobs", "finish_reason", "prompt_token_count", "generation_token_count")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    prompt_token_count: int
    generation_token_count: int
    def __init__(self, tokens: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ..., prompt_token_count: _Optional[int] = ..., generation_token_count: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("generations",)
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    generations: _containers.RepeatedCompositeFieldContainer[Generation]
    def __init__(self, generations: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ...) -> None: ...

class StreamGenerateRequest(_message.Message):
    __slots__ = ("prompt_tokens", "max_gen_len", "temperature", "top_p", "logprobs", "echo", "seed", "stop_ids", "merge_pending_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_GEN_LEN_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_IDS_FIELD_NUMBER: _ClassVar[int]
    MERGE_PENDING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: _containers.RepeatedCompositeFieldContainer[_types_pb2.TokenIds]
    max_gen_len: int
    temperature: float
    top_p: float
    logprobs: bool
    echo: bool
    seed: int
    stop_ids: _containers.RepeatedScalarFieldContainer[int]
    merge_pending_tokens: bool
    def __init__(self, prompt_tokens: _Optional[_Iterable[_Union[_types_pb2.TokenIds, _Mapping]]] = ..., max_gen_len: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., logprobs: _Optional[bool] = ..., echo: _Optional[bool] = ..., seed: _Optional[int] = ..., stop_ids: _Optional[_Iterable[int]] = ..., merge_pending_tokens: _Optional[bool] = ...) -> None: ...

class StreamGenerateResponse(_message.Message):
    __slots__ = ("index", "tokens", "logprobs", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    tokens: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: _types_pb2.FinishReason
    def __init__(self, index: _Optional[int] = ..., tokens: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[_Union[_types_pb2.FinishReason, str]] = ...) -> None: ...

class GetEngineInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEngineInfoResponse(_message.Message):
    __slots__ = ("max_seq_len", "max_batch_size", "vocab_size", "world_size", "dtype", "device", "n_layers", "dim", "active_rows", "queued", "max_queue", "n_heads", "n_kv_heads", "steps", "n_params", "model_name")
    MAX_SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    N_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ROWS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    N_HEADS_FIELD_NUMBER: _ClassVar[int]
    N_KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    N_PARAMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    max_seq_len: int
    max_batch_size: int
    vocab_size: int
    world_size: int
    dtype: str
    device: str
    n_layers: int
    dim: int
    active_rows: int
    queued: int
    max_queue: int
    n_heads: int
    n_kv_heads: int
    steps: int
    n_params: int
    model_name: str
    def __init__(self, max_seq_len: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., vocab_size: _Optional[int] = ..., world_size: _Optional[int] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., n_layers: _Optional[int] = ..., dim: _Optional[int] = ..., active_rows: _Optional[int] = ..., queued: _Optional[int] = ..., max_queue: _Optional[int] = ..., n_heads: _Optional[int] = ..., n_kv_heads: _Optional[int] = ..., steps: _Optional[int] = ..., n_params: _Optional[int] = ..., model_name: _Optional[str] = ...) -> None: ...
