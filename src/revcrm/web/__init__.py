"""The CRM pages a host panel mounts: ``create_app(crm, authenticate=...)`` returns an
ASGI application (Starlette) to mount under any prefix; see docs/web.md.

Needs the ``revcrm[web]`` extra (Starlette, Jinja2). revcrm keeps no users: the host's
``authenticate(request)`` returns a :class:`Staff` or None.
"""

from revcrm.web._app import Authenticate, TicketSource, create_app
from revcrm.web._auth import Role, Staff
from revcrm.web._wsgi import WsgiBridge, wsgi_app

__all__ = ["Authenticate", "Role", "Staff", "TicketSource", "WsgiBridge", "create_app", "wsgi_app"]
