"""
flagstaff's long-poll relay: an ASGI app that serves configs on ConfigCat's
CDN path to many clients, holding each request until its config changes
(``Prefer: wait=N``), fed by ConfigCat's CDN, local files or an admin
endpoint.

``flagstaff relay`` runs it under uvicorn (``pip install 'flagstaff[relay]'``);
:func:`create_app` builds the app for any ASGI server that runs the lifespan.
"""

from ._app import MAX_WAIT, Relay, create_app
from ._configs import Feed, etag_of
from ._sources import CDNSource, FileSource, Source

__all__ = (
    "CDNSource",
    "Feed",
    "FileSource",
    "MAX_WAIT",
    "Relay",
    "Source",
    "create_app",
    "etag_of",
)
