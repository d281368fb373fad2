"""Type stubs for flagstaff's compiled evaluation core."""

import datetime
from typing import Any, Optional, Union

from flagstaff._errors import ErrorCode
from flagstaff.config import ConfigModel

AttributeValue = Union[str, int, float, datetime.datetime, list[str]]
SettingValue = Union[bool, str, int, float]

class User:
    identifier: Optional[str]
    email: Optional[str]
    country: Optional[str]
    custom: dict[str, AttributeValue]
    def __init__(
        self,
        identifier: Optional[str],
        email: Optional[str] = None,
        country: Optional[str] = None,
        custom: Optional[dict[str, AttributeValue]] = None,
    ) -> None: ...
    def get(self, name: str) -> Optional[AttributeValue]: ...

class EvaluationDetails:
    key: str
    value: Any
    variation_id: Optional[str]
    is_default_value: bool
    error: Optional[str]
    error_code: ErrorCode
    matched_rule: Optional[int]
    matched_option: Optional[int]
    user: Optional[User]
    fetch_time: Optional[datetime.datetime]
    def explain(self) -> str: ...
    def __init__(
        self,
        key: str,
        value: Any,
        *,
        variation_id: Optional[str] = None,
        is_default_value: bool = False,
        error: Optional[str] = None,
        error_code: ErrorCode = ...,
        matched_rule: Optional[int] = None,
        matched_option: Optional[int] = None,
        user: Optional[User] = None,
        fetch_time: Optional[datetime.datetime] = None,
    ) -> None: ...

class Config:
    model: ConfigModel
    @staticmethod
    def from_json(raw: Union[bytes, str]) -> Config: ...
    @staticmethod
    def from_model(model: ConfigModel) -> Config: ...
    def keys(self) -> list[str]: ...
    def attributes(self) -> list[str]: ...
    def explain(self, key: str, user: Optional[User] = None) -> str: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...
    def get_value(
        self, key: str, default: Any, user: Optional[User] = None
    ) -> Any: ...
    def get_value_details(
        self, key: str, default: Any, user: Optional[User] = None
    ) -> EvaluationDetails: ...
    def get_all_values(
        self, user: Optional[User] = None
    ) -> dict[str, SettingValue]: ...
    def get_all_value_details(
        self, user: Optional[User] = None
    ) -> list[EvaluationDetails]: ...

def sha1_digest(data: bytes) -> bytes: ...
def sha256_digest(data: bytes) -> bytes: ...
def percentage_bucket(key: str, text: str) -> int: ...
def canonical_string(value: AttributeValue) -> Optional[str]: ...
def sha1_implementation() -> str: ...
def stamp_fetch_time(details: EvaluationDetails, fetch_time: Optional[datetime.datetime]) -> EvaluationDetails: ...

class BatchPlan:
    rows: int
    slots: list[bytearray]
    variations: list[bytearray]
    values: list[SettingValue]
    variation_names: list[str]
    def __init__(
        self,
        config: Config,
        columns: dict[str, tuple[int, int, int, int, int, int, int]],
        keys: list[str],
        rows: int,
        variation_ids: bool,
    ) -> None: ...
    def run(self, start: int, stop: int) -> None: ...
