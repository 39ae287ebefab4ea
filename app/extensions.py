"""Flask extensions, created unbound and initialised in ``create_app``."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from app.db import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
#: Flask-Limiter rather than a hand-made counter: storage backends (memory, Redis) and
#: per-route limits come ready and tested.
limiter = Limiter(key_func=get_remote_address)
