"""
What a relay serves: per SDK key a feed holding the current config version
(its bytes, strong ETag and ready-made response headers) and the requests
held until that version is replaced; and who is told what flags changed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Callable, Optional

from ..client._fetch import redact
from ..config import ConfigChange, ConfigModel, decode_config, describe_change

__all__ = ("Feed", "Version", "etag_of")

logger = logging.getLogger("flagstaff.relay")


def etag_of(body: bytes) -> str:
    """
    The strong ETag of a config: a hash of its bytes, so that it survives
    restarts and is the same on every relay serving the same config.
    """
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class Version:
    """
    One config as served: its bytes, its ETag and the headers of a ``200``
    and of a ``304`` for it, built once for every response.
    """

    __slots__ = ("body", "etag", "tag", "ok_headers", "not_modified_headers",
                 "published_at")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = etag_of(body)
        #: the ETag as the headers carry it
        self.tag = self.etag.encode()
        common = [(b"etag", self.tag), (b"cache-control", b"no-cache")]
        self.ok_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *common,
        ]
        self.not_modified_headers = common
        #: ``time.monotonic()`` when this version took effect
        self.published_at = time.monotonic()


class Feed:
    """
    One SDK key: the config version served for it, where it comes from
    (``"cdn"``, ``"file"`` or ``"admin"``), and the cancel scopes of the
    requests held on the current version.

    Every method runs in the relay's event loop.

    :param on_flags_changed: called with a :class:`~flagstaff.config.ConfigChange`
        (named by the redacted key) once a publish that replaced a config
        took effect, when the new one serves something different.
    """

    __slots__ = ("sdk_key", "label", "source", "version", "waiters", "held",
                 "checked_at", "error", "on_flags_changed", "_model")

    def __init__(
        self,
        sdk_key: str,
        source: str,
        on_flags_changed: Optional[Callable[[ConfigChange], Any]] = None,
    ) -> None:
        self.sdk_key = sdk_key
        #: the key as log lines and the health page show it
        self.label = redact(sdk_key)
        self.source = source
        self.version: Optional[Version] = None
        #: the requests held on `version`; a publish cancels them all
        self.waiters: set[Any] = set()
        #: how many requests are held for this key, the ones answering included
        self.held = 0
        #: ``time.monotonic()`` when the source last confirmed the version
        self.checked_at: Optional[float] = None
        #: why the source's last attempt failed, or None
        self.error: Optional[str] = None
        self.on_flags_changed = on_flags_changed
        #: the decoded `version`, kept only to tell the hook what changed
        self._model: Optional[ConfigModel] = None

    def publish(self, raw: bytes) -> bool:
        """
        Serves `raw` from now on, if it decodes, and answers every request
        held on the version it replaces.

        :return: whether the config changed (False for the bytes served now).
        :raises ConfigError: when `raw` is not a config_v6 document; the
            version served stays as it is.
        """
        current = self.version
        if current is not None and current.body == raw:
            self.confirm()
            return False
        model = decode_config(raw)

        version = self.version = Version(bytes(raw))
        self.confirm()
        waiters, self.waiters = self.waiters, set()
        for scope in waiters:
            scope.cancel()
        logger.info(
            "config %s took effect (ETag %s, from %s, %d held requests answered)",
            self.label, version.etag, self.source, len(waiters),
        )
        if self.on_flags_changed is not None:
            previous, self._model = self._model, model
            if previous is not None:
                self._tell(previous, model)
        return True

    def _tell(self, previous: ConfigModel, model: ConfigModel) -> None:
        """
        Calls the hook with what changed; it cannot fail the publish, which
        has taken effect already.
        """
        try:
            change = describe_change(previous, model, name=self.label)
            if change:
                self.on_flags_changed(change)
        except Exception as exc:
            logger.warning("the on_flags_changed hook of %s raised %r", self.label, exc)

    def confirm(self) -> None:
        """
        Notes that the source has just confirmed the version served.
        """
        self.checked_at = time.monotonic()
        self.error = None

    def fail(self, error: str) -> None:
        """
        Notes that the source's last attempt failed; the version stays.
        """
        self.error = error

    def release(self) -> None:
        """
        Answers every held request now, with the version it already has.
        """
        for scope in list(self.waiters):
            scope.cancel()

    def health(self, now: float) -> dict[str, Any]:
        """
        The feed as the health page shows it, without the key in full.
        """
        version = self.version
        checked = self.checked_at
        return {
            "sdk_key": self.label,
            "source": self.source,
            "loaded": version is not None,
            "etag": version.etag if version else None,
            "age": round(now - version.published_at, 3) if version else None,
            "checked": round(now - checked, 3) if checked is not None else None,
            "held": self.held,
            "error": self.error,
        }
