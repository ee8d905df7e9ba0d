from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Property(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPERTY_UNSPECIFIED: _ClassVar[Property]
    ENERGY: _ClassVar[Property]
    FORCES: _ClassVar[Property]
    STRESS: _ClassVar[Property]
    ENERGIES: _ClassVar[Property]
    UNCERTAINTY: _ClassVar[Property]
    DIPOLE: _ClassVar[Property]
    BORN_CHARGES: _ClassVar[Property]
    CHARGES: _ClassVar[Property]
    POLARIZABILITY: _ClassVar[Property]
PROPERTY_UNSPECIFIED: Property
ENERGY: Property
FORCES: Property
STRESS: Property
ENERGIES: Property
UNCERTAINTY: Property
DIPOLE: Property
BORN_CHARGES: Property
CHARGES: Property
POLARIZABILITY: Property

class Array(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class System(_message.Message):
    __slots__ = ("positions", "numbers", "cell", "pbc", "conditions")
    class ConditionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Array
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Array, _Mapping]] = ...) -> None: ...
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    PBC_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: Array
    numbers: Array
    cell: Array
    pbc: _containers.RepeatedScalarFieldContainer[bool]
    conditions: _containers.MessageMap[str, Array]
    def __init__(self, positions: _Optional[_Union[Array, _Mapping]] = ..., numbers: _Optional[_Union[Array, _Mapping]] = ..., cell: _Optional[_Union[Array, _Mapping]] = ..., pbc: _Optional[_Iterable[bool]] = ..., conditions: _Optional[_Mapping[str, Array]] = ...) -> None: ...

class PackedCondition(_message.Message):
    __slots__ = ("values", "present")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    values: Array
    present: Array
    def __init__(self, values: _Optional[_Union[Array, _Mapping]] = ..., present: _Optional[_Union[Array, _Mapping]] = ...) -> None: ...

class PackedSystems(_message.Message):
    __slots__ = ("positions", "numbers", "counts", "cells", "pbc", "conditions")
    class ConditionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PackedCondition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PackedCondition, _Mapping]] = ...) -> None: ...
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    PBC_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: Array
    numbers: Array
    counts: Array
    cells: Array
    pbc: Array
    conditions: _containers.MessageMap[str, PackedCondition]
    def __init__(self, positions: _Optional[_Union[Array, _Mapping]] = ..., numbers: _Optional[_Union[Array, _Mapping]] = ..., counts: _Optional[_Union[Array, _Mapping]] = ..., cells: _Optional[_Union[Array, _Mapping]] = ..., pbc: _Optional[_Union[Array, _Mapping]] = ..., conditions: _Optional[_Mapping[str, PackedCondition]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "version", "systems", "properties", "request_id", "priority", "no_harvest", "packed")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    NO_HARVEST_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    systems: _containers.RepeatedCompositeFieldContainer[System]
    properties: _containers.RepeatedScalarFieldContainer[Property]
    request_id: str
    priority: int
    no_harvest: bool
    packed: PackedSystems
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., systems: _Optional[_Iterable[_Union[System, _Mapping]]] = ..., properties: _Optional[_Iterable[_Union[Property, str]]] = ..., request_id: _Optional[str] = ..., priority: _Optional[int] = ..., no_harvest: _Optional[bool] = ..., packed: _Optional[_Union[PackedSystems, _Mapping]] = ...) -> None: ...

class SystemResult(_message.Message):
    __slots__ = ("energy", "forces", "stress", "energies", "energy_std", "forces_std", "max_force_std", "warnings", "dipole", "born_charges", "charges", "polarizability")
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    FORCES_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    ENERGIES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_STD_FIELD_NUMBER: _ClassVar[int]
    FORCES_STD_FIELD_NUMBER: _ClassVar[int]
    MAX_FORCE_STD_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DIPOLE_FIELD_NUMBER: _ClassVar[int]
    BORN_CHARGES_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    POLARIZABILITY_FIELD_NUMBER: _ClassVar[int]
    energy: float
    forces: Array
    stress: Array
    energies: Array
    energy_std: float
    forces_std: Array
    max_force_std: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    dipole: Array
    born_charges: Array
    charges: Array
    polarizability: Array
    def __init__(self, energy: _Optional[float] = ..., forces: _Optional[_Union[Array, _Mapping]] = ..., stress: _Optional[_Union[Array, _Mapping]] = ..., energies: _Optional[_Union[Array, _Mapping]] = ..., energy_std: _Optional[float] = ..., forces_std: _Optional[_Union[Array, _Mapping]] = ..., max_force_std: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ..., dipole: _Optional[_Union[Array, _Mapping]] = ..., born_charges: _Optional[_Union[Array, _Mapping]] = ..., charges: _Optional[_Union[Array, _Mapping]] = ..., polarizability: _Optional[_Union[Array, _Mapping]] = ...) -> None: ...

class Warnings(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[str]] = ...) -> None: ...

class PackedResults(_message.Message):
    __slots__ = ("energy", "forces", "stress", "energies", "energy_std", "forces_std", "max_force_std", "warnings", "dipole", "born_charges", "charges", "counts", "polarizability")
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    FORCES_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    ENERGIES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_STD_FIELD_NUMBER: _ClassVar[int]
    FORCES_STD_FIELD_NUMBER: _ClassVar[int]
    MAX_FORCE_STD_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DIPOLE_FIELD_NUMBER: _ClassVar[int]
    BORN_CHARGES_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    POLARIZABILITY_FIELD_NUMBER: _ClassVar[int]
    energy: Array
    forces: Array
    stress: Array
    energies: Array
    energy_std: Array
    forces_std: Array
    max_force_std: Array
    warnings: _containers.RepeatedCompositeFieldContainer[Warnings]
    dipole: Array
    born_charges: Array
    charges: Array
    counts: Array
    polarizability: Array
    def __init__(self, energy: _Optional[_Union[Array, _Mapping]] = ..., forces: _Optional[_Union[Array, _Mapping]] = ..., stress: _Optional[_Union[Array, _Mapping]] = ..., energies: _Optional[_Union[Array, _Mapping]] = ..., energy_std: _Optional[_Union[Array, _Mapping]] = ..., forces_std: _Optional[_Union[Array, _Mapping]] = ..., max_force_std: _Optional[_Union[Array, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[Warnings, _Mapping]]] = ..., dipole: _Optional[_Union[Array, _Mapping]] = ..., born_charges: _Optional[_Union[Array, _Mapping]] = ..., charges: _Optional[_Union[Array, _Mapping]] = ..., counts: _Optional[_Union[Array, _Mapping]] = ..., polarizability: _Optional[_Union[Array, _Mapping]] = ...) -> None: ...

class BatchInfo(_message.Message):
    __slots__ = ("requests", "systems", "atoms", "queue_wait_s", "compute_s")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    ATOMS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_S_FIELD_NUMBER: _ClassVar[int]
    requests: int
    systems: int
    atoms: int
    queue_wait_s: float
    compute_s: float
    def __init__(self, requests: _Optional[int] = ..., systems: _Optional[int] = ..., atoms: _Optional[int] = ..., queue_wait_s: _Optional[float] = ..., compute_s: _Optional[float] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("model", "model_version", "results", "batch", "request_id", "error", "replica", "packed")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_version: str
    results: _containers.RepeatedCompositeFieldContainer[SystemResult]
    batch: BatchInfo
    request_id: str
    error: Error
    replica: str
    packed: PackedResults
    def __init__(self, model: _Optional[str] = ..., model_version: _Optional[str] = ..., results: _Optional[_Iterable[_Union[SystemResult, _Mapping]]] = ..., batch: _Optional[_Union[BatchInfo, _Mapping]] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., replica: _Optional[str] = ..., packed: _Optional[_Union[PackedResults, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "kind", "elements", "cutoff", "ensemble_size", "conditions", "properties", "dtype", "device", "is_default", "sha256", "accepted_conditions", "trust")
    class TrustEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    kind: str
    elements: _containers.RepeatedScalarFieldContainer[int]
    cutoff: float
    ensemble_size: int
    conditions: _containers.RepeatedScalarFieldContainer[str]
    properties: _containers.RepeatedScalarFieldContainer[Property]
    dtype: str
    device: str
    is_default: bool
    sha256: str
    accepted_conditions: _containers.RepeatedScalarFieldContainer[str]
    trust: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[str] = ..., elements: _Optional[_Iterable[int]] = ..., cutoff: _Optional[float] = ..., ensemble_size: _Optional[int] = ..., conditions: _Optional[_Iterable[str]] = ..., properties: _Optional[_Iterable[_Union[Property, str]]] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., is_default: _Optional[bool] = ..., sha256: _Optional[str] = ..., accepted_conditions: _Optional[_Iterable[str]] = ..., trust: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
