"""
An OpenFeature provider over :class:`flagstaff.Client`.

Needs the ``openfeature`` extra (``pip install flagstaff[openfeature]``)::

    from openfeature import api
    from flagstaff.openfeature import FlagstaffProvider

    async with FlagstaffProvider("sdk-key", emitter=emitter) as provider:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        context = EvaluationContext("user-42", {"plan": "free"})
        details = await client.get_string_details_async(
            "onboardingFeature", "default", context
        )
        client.track("Subscribed to Premium", context)

Boolean, string, integer and float flags map onto the ConfigCat setting types
of the same name (an integer setting also serves a float flag). ConfigCat has
no object settings: an object flag is a text setting holding a JSON object or
array, which the provider parses.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OpenFeatureErrorCode
from openfeature.exception import ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails

from ._errors import ErrorCode
from .client import Client
from .core import Config, EvaluationDetails, User

__all__ = ("FlagstaffProvider", "to_user")

logger = logging.getLogger("flagstaff.openfeature")

# flagstaff's error codes as OpenFeature's. A defective setting is a config
# that could not be understood, hence a parse error.
_ERROR_CODES = {
    ErrorCode.SETTING_KEY_MISSING: OpenFeatureErrorCode.FLAG_NOT_FOUND,
    ErrorCode.CONFIG_JSON_NOT_AVAILABLE: OpenFeatureErrorCode.PROVIDER_NOT_READY,
    ErrorCode.INVALID_CONFIG_MODEL: OpenFeatureErrorCode.PARSE_ERROR,
    ErrorCode.SETTING_TYPE_MISMATCH: OpenFeatureErrorCode.TYPE_MISMATCH,
    ErrorCode.UNEXPECTED_ERROR: OpenFeatureErrorCode.GENERAL,
}

# The attributes of an evaluation context that are fields of a User rather
# than custom attributes (ConfigCat's names for them).
_USER_FIELDS = {"Email": "email", "Country": "country"}


def to_user(context: Optional[EvaluationContext]) -> Optional[User]:
    """
    The flagstaff user of an OpenFeature evaluation context.

    The targeting key becomes the identifier, the attributes ``"Email"`` and
    ``"Country"`` the user's fields, every other attribute a custom one.

    :param context: an evaluation context, or None.
    :return: the user, or None for a missing or empty context (so that the
        client's default user applies).
    """
    if context is None or (context.targeting_key is None and not context.attributes):
        return None
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in context.attributes.items():
        if value is None:
            continue
        if name in _USER_FIELDS:
            fields[_USER_FIELDS[name]] = str(value)
        else:
            custom[name] = value
    return User(context.targeting_key, custom=custom, **fields)


def _reason(details: EvaluationDetails, config: Optional[Config]) -> Reason:
    # A percentage option (alone or under a rule) is a split; a rule that
    # served a value is targeting; otherwise the setting's own value served,
    # which is static when the setting has nothing to evaluate at all.
    if details.matched_option is not None:
        return Reason.SPLIT
    if details.matched_rule is not None:
        return Reason.TARGETING_MATCH
    entry = None if config is None else config.model.settings.get(details.key)
    setting = getattr(entry, "setting", None)
    if setting is not None and not setting.r and not setting.p:
        return Reason.STATIC
    return Reason.DEFAULT


def _check_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else TypeError


def _check_str(value: Any) -> Any:
    return value if isinstance(value, str) else TypeError


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return TypeError


def _check_float(value: Any) -> Any:
    # An integer setting serves a float flag; OpenFeature wants a float.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return TypeError


def _check_object(value: Any) -> Any:
    if not isinstance(value, str):
        return TypeError
    try:
        parsed = json.loads(value)
    except ValueError:
        return ValueError
    return parsed if isinstance(parsed, (dict, list)) else TypeError


def _resolve(
    details: EvaluationDetails,
    default: Any,
    check: Callable[[Any], Any],
    kind: str,
    config: Optional[Config],
) -> FlagResolutionDetails[Any]:
    """The OpenFeature resolution of one flagstaff evaluation."""
    variant = details.variation_id
    if details.error_code is not ErrorCode.NONE:
        code = _ERROR_CODES.get(details.error_code, OpenFeatureErrorCode.GENERAL)
        return FlagResolutionDetails(
            default, code, details.error, Reason.ERROR, flag_metadata=_metadata(details)
        )

    value = check(details.value)
    if value is TypeError:
        setting_type = type(details.value).__name__
        message = f"the setting '{details.key}' serves a {setting_type}, not a {kind}"
        if kind == "object" and isinstance(details.value, str):
            message += " (a JSON object or array as text)"
        return FlagResolutionDetails(
            default, OpenFeatureErrorCode.TYPE_MISMATCH, message, Reason.ERROR
        )
    if value is ValueError:
        message = f"the setting '{details.key}' does not hold JSON text"
        return FlagResolutionDetails(
            default, OpenFeatureErrorCode.PARSE_ERROR, message, Reason.ERROR
        )
    return FlagResolutionDetails(
        value,
        reason=_reason(details, config),
        variant=variant,
        flag_metadata=_metadata(details),
    )


def _metadata(details: EvaluationDetails) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if details.matched_rule is not None:
        metadata["matched_rule"] = details.matched_rule
    if details.matched_option is not None:
        metadata["matched_option"] = details.matched_option
    return metadata


def _changed_keys(old: Optional[Config], new: Config) -> list[str]:
    before = {} if old is None else old.model.settings
    after = new.model.settings
    keys = set(before) | set(after)
    return sorted(key for key in keys if before.get(key) != after.get(key))


class FlagstaffProvider(AbstractProvider):
    """
    Serves OpenFeature flags from a :class:`flagstaff.Client`.

    Given an SDK key, the provider makes the client itself (the keyword
    arguments are :class:`~flagstaff.Client`'s) and hooks into it to emit
    OpenFeature's events: ``PROVIDER_READY`` when the first config arrived,
    ``PROVIDER_CONFIGURATION_CHANGED`` with the keys of the flags that
    changed, ``PROVIDER_ERROR`` for every error the client reports, and
    ``PROVIDER_READY`` again after one, once the client has downloaded
    since: with the next config, or at the first evaluation after a
    download that found the config unchanged. Hooks passed as
    ``on_ready``, ``on_config_changed`` and ``on_error`` are still called.

    Given an open ``client=`` instead, the provider evaluates through it but
    emits no events of its own: the client's hooks were fixed when it was
    made. The caller opens and closes that client.

    Open the provider with ``async with`` (which opens and closes the client
    it made) before OpenFeature evaluates through it; ``initialize`` does
    not wait for a config.

    Async resolution (``get_*_details_async``) waits for the first config as
    :meth:`Client.get_value_details` does and must run in the client's event
    loop. Sync resolution evaluates the config held now
    (:meth:`Client.snapshot`) without waiting: before the first config it
    answers ``PROVIDER_NOT_READY``.

    :param sdk_key: the SDK key, when the provider makes the client.
    :param client: an open client to use instead.
    :param emitter: an :class:`~flagstaff.AmplitudeEmitter` that receives
        OpenFeature's tracking events (through its ``track`` method) and,
        given to the client the provider makes, the evaluations' exposures
        too; without one, tracking does nothing. The caller opens and closes
        it.
    :param client_kwargs: the client's keyword arguments.
    :raises TypeError: for neither or both of `sdk_key` and `client`, or
        `client_kwargs` with `client`.
    """

    def __init__(
        self,
        sdk_key: Optional[str] = None,
        *,
        client: Optional[Client] = None,
        emitter: Any = None,
        **client_kwargs: Any,
    ) -> None:
        super().__init__()
        if (sdk_key is None) == (client is None):
            raise TypeError("FlagstaffProvider takes an sdk_key or a client=, not both")
        if client is not None and client_kwargs:
            raise TypeError("client options go to the client, not with client=")
        self._emitter = emitter
        self._owned = client is None
        self._ready = threading.Event()
        self._failed = False
        #: the served config's download time when the last error came
        self._failed_at: Any = None
        self._config: Optional[Config] = None
        self._user_hooks: dict[str, Any] = {}
        if client is None:
            self._user_hooks = {
                name: client_kwargs.pop(name, None)
                for name in ("on_ready", "on_config_changed", "on_error")
            }
            client = Client(
                sdk_key,  # type: ignore[arg-type]
                on_ready=self._on_ready,
                on_config_changed=self._on_config_changed,
                on_error=self._on_error,
                emitter=emitter,
                **client_kwargs,
            )
        else:
            self._ready.set()
        self.client = client

    async def __aenter__(self) -> "FlagstaffProvider":
        if self._owned:
            await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._owned:
            await self.client.__aexit__(*exc_info)

    # -- OpenFeature's provider API ----------------------------------------

    def get_metadata(self) -> Metadata:
        return Metadata(name="flagstaff")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """
        Checks that the client is ready; OpenFeature then marks the provider
        ready.

        :raises ProviderNotReadyError: when the provider was not opened with
            ``async with`` yet; it emits ``PROVIDER_READY`` once it is.
        """
        if not self._ready.is_set():
            raise ProviderNotReadyError(
                "open the provider with 'async with FlagstaffProvider(...)'"
            )

    def shutdown(self) -> None:
        # The client is async: leaving the ``async with`` block closes it.
        pass

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: Optional[EvaluationContext] = None,
        tracking_event_details: Optional[TrackingEventDetails] = None,
    ) -> None:
        """
        Forwards a tracking event (a conversion) to the emitter, as an
        Amplitude event of that name for the context's targeting key; the
        details' attributes, and their ``value``, become event properties.
        """
        if self._emitter is None:
            return
        properties: dict[str, Any] = {}
        if tracking_event_details is not None:
            properties.update(tracking_event_details.attributes)
            if tracking_event_details.value is not None:
                properties["value"] = tracking_event_details.value
        user_id = evaluation_context.targeting_key if evaluation_context else None
        self._emitter.track(
            tracking_event_name, user_id=user_id, event_properties=properties
        )

    # -- resolution -----------------------------------------------------------

    def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
        return self._sync(
            flag_key, default_value, evaluation_context, _check_bool, "bool"
        )

    def resolve_string_details(self, flag_key, default_value, evaluation_context=None):
        return self._sync(
            flag_key, default_value, evaluation_context, _check_str, "str"
        )

    def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
        return self._sync(
            flag_key, default_value, evaluation_context, _check_int, "int"
        )

    def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
        return self._sync(
            flag_key, default_value, evaluation_context, _check_float, "float"
        )

    def resolve_object_details(self, flag_key, default_value, evaluation_context=None):
        return self._sync(
            flag_key, default_value, evaluation_context, _check_object, "object"
        )

    async def resolve_boolean_details_async(
        self, flag_key, default_value, evaluation_context=None
    ):
        return await self._async(
            flag_key, default_value, evaluation_context, _check_bool, "bool"
        )

    async def resolve_string_details_async(
        self, flag_key, default_value, evaluation_context=None
    ):
        return await self._async(
            flag_key, default_value, evaluation_context, _check_str, "str"
        )

    async def resolve_integer_details_async(
        self, flag_key, default_value, evaluation_context=None
    ):
        return await self._async(
            flag_key, default_value, evaluation_context, _check_int, "int"
        )

    async def resolve_float_details_async(
        self, flag_key, default_value, evaluation_context=None
    ):
        return await self._async(
            flag_key, default_value, evaluation_context, _check_float, "float"
        )

    async def resolve_object_details_async(
        self, flag_key, default_value, evaluation_context=None
    ):
        return await self._async(
            flag_key, default_value, evaluation_context, _check_object, "object"
        )

    def _sync(self, key, default, context, check, kind) -> FlagResolutionDetails[Any]:
        if self._failed:
            self._check_recovery()
        # An object flag is a text setting: the default handed to flagstaff
        # is only served on errors, where OpenFeature's default wins anyway.
        details = self.client.evaluate_now(key, _plain(default), to_user(context))
        return _resolve(details, default, check, kind, self.client.snapshot().config)

    async def _async(self, key, default, context, check, kind):
        if self._failed:
            self._check_recovery()
        details = await self.client.get_value_details(
            key, _plain(default), to_user(context)
        )
        config = self.client.snapshot().config
        return _resolve(details, default, check, kind, config)

    # -- the client's hooks ---------------------------------------------------

    def _on_ready(self, *args: Any) -> None:
        self._ready.set()
        self._config = self.client.snapshot().config
        self.emit_provider_ready(ProviderEventDetails(message="flagstaff is ready"))
        self._call_user_hook("on_ready", *args)

    def _on_config_changed(self, config: Config) -> None:
        previous, self._config = self._config, config
        # The first config is announced as ready, not as a change.
        if self._ready.is_set():
            changed = _changed_keys(previous, config)
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=changed, message="new config")
            )
            if self._failed:
                self._recovered()
        self._call_user_hook("on_config_changed", config)

    def _check_recovery(self) -> None:
        # A download since the error (a 304 too) renews the snapshot's time;
        # a failed one leaves it, so a newer time means the client recovered.
        fetched = self.client.snapshot().fetch_time
        failed_at = self._failed_at
        if fetched is not None and (failed_at is None or fetched > failed_at):
            self._recovered()

    def _recovered(self) -> None:
        self._failed = False
        self.emit_provider_ready(ProviderEventDetails(message="recovered"))

    def _on_error(self, message: str) -> None:
        self._failed = True
        self._failed_at = self.client.snapshot().fetch_time
        self.emit_provider_error(
            ProviderEventDetails(
                message=message, error_code=OpenFeatureErrorCode.GENERAL
            )
        )
        self._call_user_hook("on_error", message)

    def _call_user_hook(self, name: str, *args: Any) -> None:
        hook = self._user_hooks.get(name)
        if hook is not None:
            hook(*args)


def _plain(default: Any) -> Any:
    # flagstaff serves defaults of setting types; an object default is
    # replaced by None (OpenFeature's default is returned on errors).
    if isinstance(default, (Mapping, Sequence)) and not isinstance(default, str):
        return None
    return default
