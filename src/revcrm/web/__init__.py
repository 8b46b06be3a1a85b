"""The CRM pages a host panel mounts: ``create_app(crm, authenticate=...)`` returns an
ASGI application (Starlette) to mount under any prefix; see docs/web.md.

Needs the ``revcrm[web]`` extra (Starlette, Jinja2). revcrm keeps no users: the host's
``authenticate(request)`` returns a :class:`Staff` or None.
"""

from revcrm.errors import MissingExtraError

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as e:  # pragma: no cover - the web extra is installed in the tests
    raise MissingExtraError(e.name or "starlette", "web", "revcrm.web") from e

from revcrm.web._app import create_app
from revcrm.web._auth import Role, Staff
from revcrm.web._core import Authenticate, TicketSource
from revcrm.web._wsgi import WsgiBridge, wsgi_app

__all__ = ["Authenticate", "Role", "Staff", "TicketSource", "WsgiBridge", "create_app", "wsgi_app"]
