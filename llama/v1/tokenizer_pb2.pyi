from llama.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeRequest(_message.Message):
    __slots__ = ("texts", "bos", "eos")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    BOS_FIELD_NUMBER: _ClassVar[int]
    EOS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    bos: bool
    eos: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., bos: _Optional[bool] = ..., eos: _Optional[bool] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_types_pb2.TokenIds]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_types_pb2.TokenIds, _Mapping]]] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("tokens", "pieces")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    PIECES_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_types_pb2.TokenIds]
    pieces: bool
    def __init__(self, tokens: _Optional[_Iterable[_Union[_types_pb2.TokenIds, _Mapping]]] = ..., pieces: _Optional[bool] = ...) -> None: ...

class TokenPieces(_message.Message):
    __slots__ = ("pieces",)
    PIECES_FIELD_NUMBER: _ClassVar[int]
    pieces: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pieces: _Optional[_Iterable[str]] = ...) -> None: ...

class DecodeResponse(_message.Message):
    __slots__ = ("texts", "pieces")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PIECES_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    pieces: _containers.RepeatedCompositeFieldContainer[TokenPieces]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., pieces: _Optional[_Iterable[_Union[TokenPieces, _Mapping]]] = ...) -> None: ...

class EncodeDialogsRequest(_message.Message):
    __slots__ = ("dialogs",)
    DIALOGS_FIELD_NUMBER: _ClassVar[int]
    dialogs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Dialog]
    def __init__(self, dialogs: _Optional[_Iterable[_Union[_types_pb2.Dialog, _Mapping]]] = ...) -> None: ...

class EncodeDialogsResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_types_pb2.TokenIds]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_types_pb2.TokenIds, _Mapping]]] = ...) -> None: ...

class GetTokenizerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTokenizerInfoResponse(_message.Message):
    __slots__ = ("vocab_size", "bos_id", "eos_id", "pad_id", "model_sha256", "max_texts", "max_text_bytes", "default_system_prompt")
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    BOS_ID_FIELD_NUMBER: _ClassVar[int]
    EOS_ID_FIELD_NUMBER: _ClassVar[int]
    PAD_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    model_sha256: str
    max_texts: int
    max_text_bytes: int
    default_system_prompt: str
    def __init__(self, vocab_size: _Optional[int] = ..., bos_id: _Optional[int] = ..., eos_id: _Optional[int] = ..., pad_id: _Optional[int] = ..., model_sha256: _Optional[str] = ..., max_texts: _Optional[int] = ..., max_text_bytes: _Optional[int] = ..., default_system_prompt: _Optional[str] = ...) -> None: ...

class GetTokenizerModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTokenizerModelResponse(_message.Message):
    __slots__ = ("model", "model_sha256")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    model: bytes
    model_sha256: str
    def __init__(self, model: _Optional[bytes] = ..., model_sha256: _Optional[str] = ...) -> None: ...
