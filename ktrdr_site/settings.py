"""Settings for KTRDR Operations, all read from the environment.

The defaults are the embedded development setup that `make run` starts on a fresh machine:
SQLite, the local-memory cache, an in-memory channel layer, local execution, synthetic data.
Production sets `DJANGO_SECRET_KEY`, `DJANGO_DEBUG=0`, `DJANGO_ALLOWED_HOSTS`, `DATABASE_URL`
and `REDIS_URL`. Every knob is listed in the README.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be ≥ {minimum}, got {raw!r}")
    return value


def env_file(name: str) -> str:
    """A path to an existing file, or "" when unset."""
    raw = os.environ.get(name, "").strip()
    if raw and not Path(raw).expanduser().is_file():
        raise ImproperlyConfigured(f"{name} must name an existing file, got {raw!r}")
    return str(Path(raw).expanduser().resolve()) if raw else ""


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be ≥ {minimum}, got {raw!r}")
    return value


DEBUG = env_bool("DJANGO_DEBUG", True)

_DEV_SECRET = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY and os.environ.get("KTRDR_ROLE") == "agent":
    # An agent signs nothing that outlives the process (no sessions, no forms): a fresh key.
    SECRET_KEY = secrets.token_urlsafe(50)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(
        ","
    )
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's, so `manage.py runserver` serves ASGI.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "operations",
    "marketdata",
    "training",
    "hostagents",
    "backtest",
    "evaluation",
    # Apps of your own (new operation kinds register themselves in their AppConfig.ready()).
    *[app.strip() for app in os.environ.get("KTRDR_EXTRA_APPS", "").split(",") if app.strip()],
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Database or cache down: a 503 (JSON under /api/, a page elsewhere), never a 500.
    "operations.middleware.OutageMiddleware",
    # Last, as django-axes asks: it answers locked-out logins.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = os.environ.get("KTRDR_URLCONF", "ktrdr_site.urls")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "ktrdr_site.wsgi.application"
ASGI_APPLICATION = "ktrdr_site.asgi.application"


# --- Database -----------------------------------------------------------------------------
def _reset_pooled_connection(conn) -> None:
    # Back to the connection's start-up settings, then the time zone Django configured on it: one
    # round trip (no parameters, so psycopg sends both statements as one simple query).
    conn.execute("RESET ALL; SET TIME ZONE 'UTC'")


DATA_ROOT = Path(os.environ.get("KTRDR_HOME", BASE_DIR / "var"))

# --- Metrics (docs/monitoring.md) ------------------------------------------------------------
# prometheus_client's multiprocess mode: every process of this home and role keeps its counters
# in memory-mapped files in one folder, and a scrape of any of them sums them all. The folder is
# chosen here, before anything imports prometheus_client (it decides on import), and always from
# this process's own home: an agent started by a backend inherits the backend's environment and
# must not write into the backend's folder (hence KTRDR_METRICS_DIR, not the variable itself).
METRICS_DIR = Path(
    os.environ.get("KTRDR_METRICS_DIR")
    or DATA_ROOT / "metrics" / os.environ.get("KTRDR_ROLE", "backend")
)
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
_default_sqlite = f"sqlite:///{DATA_ROOT / 'ktrdr.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", _default_sqlite),
        # Requests run in a fixed pool of server threads (ktrdr_site.threaded_wsgi), so a thread's
        # connection is kept between its requests instead of opened for each (SQLite's open and
        # PRAGMAs cost more than a floor request); health-checked when a request takes it.
        conn_max_age=env_int("KTRDR_DB_CONN_MAX_AGE", 600, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh clone has no var/ yet; SQLite cannot create the folder for its file.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Worker threads, readers and the request thread share one SQLite file: WAL lets readers run
    # beside a writer, IMMEDIATE transactions take the write lock up front (no upgrade deadlocks),
    # and the timeout makes a busy writer wait instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file, not the shared in-memory database: worker threads need real concurrency.
    # One file per test process, so two test runs in one checkout never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_ROOT / f"test_ktrdr_{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable or black-holed server fails a request in seconds (a 503), never hangs it.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": env_int("KTRDR_DB_CONNECT_TIMEOUT", 5),
            "options": f"-c statement_timeout={env_int('KTRDR_DB_STATEMENT_TIMEOUT', 30) * 1000}",
        }
    )
    # A pool per process (psycopg's, as Django recommends under ASGI) instead of a connection
    # per request; with CONN_HEALTH_CHECKS a connection is checked when it is taken, so one the
    # server dropped is replaced, not handed to a request.
    # A connection handed back carries no session setting (a `SET` some code ran) to the next
    # request that takes it.
    if env_bool("KTRDR_DB_POOL", True):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env_int("KTRDR_DB_POOL_MIN", 1, minimum=0),
            # Every local worker may hold one while it writes, beside the requests' own.
            "max_size": env_int(
                "KTRDR_DB_POOL_MAX", env_int("KTRDR_LOCAL_WORKERS", 2, minimum=1) + 8, minimum=1
            ),
            "timeout": env_int("KTRDR_DB_CONNECT_TIMEOUT", 5),
            "reset": _reset_pooled_connection,
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache -------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "ktrdr_site.redis_cache.PooledRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("KTRDR_CACHE_PREFIX", "ktrdr"),
            # A Redis that is down costs a read this long, then it is served from the database.
            "OPTIONS": {
                "socket_connect_timeout": env_float("KTRDR_REDIS_TIMEOUT", 0.5),
                "socket_timeout": env_float("KTRDR_REDIS_TIMEOUT", 0.5),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ktrdr-default",
        }
    }

# --- Auth ----------------------------------------------------------------------------------
# django-axes counts failed logins per username and address: after KTRDR_LOGIN_FAILURE_LIMIT
# failures that pair is locked out for KTRDR_LOGIN_LOCKOUT_MINUTES, with a page that says so.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("KTRDR_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("KTRDR_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Every page: scripts and stylesheets from this site only; inline style *attributes* (progress
# bar widths) are allowed, inline scripts and <style> elements are not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "operations:list"
LOGOUT_REDIRECT_URL = "login"

# --- Security (check --deploy is clean when DEBUG is off) -------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    # An agent is reached over plain HTTP on loopback, over its own HTTPS (run_agent --tls-cert),
    # or behind a TLS proxy that terminates it: never redirected.
    SECURE_SSL_REDIRECT = env_bool(
        "DJANGO_SECURE_SSL_REDIRECT", os.environ.get("KTRDR_ROLE") != "agent"
    )
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- I18N / static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))

# --- REST framework ------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first so an anonymous API call gets 401 with a WWW-Authenticate header; the session
    # keeps the browsable API and the htmx pages working for logged-in users.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "operations.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies are capped in size and nesting (operations.api.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "operations.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "operations.api.renderers.StrictBrowsableAPIRenderer",
    ],
    # DRF's negotiation, with a short path for JSON clients (operations.api.negotiation).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "operations.api.negotiation.JSONFirstNegotiation",
    "DEFAULT_SCHEMA_CLASS": "operations.api.schema.KtrdrAutoSchema",
    "EXCEPTION_HANDLER": "operations.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# A host agent (`manage.py run_agent`) serves the same API to the backend only, with bearer-token
# auth (KTRDR_AGENT_TOKEN) instead of users.
KTRDR_ROLE = os.environ.get("KTRDR_ROLE", "backend")
if KTRDR_ROLE not in {"backend", "agent"}:
    raise ImproperlyConfigured(f"KTRDR_ROLE must be backend or agent, got {KTRDR_ROLE!r}")
if KTRDR_ROLE == "agent":
    REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = ["hostagents.auth.AgentTokenAuthentication"]
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = ["rest_framework.renderers.JSONRenderer"]
    # An agent answers the backend's bearer-token JSON calls only (hostagents.agent_urls): no
    # pages, sessions, logins or forms, so none of the browser-facing middleware; each would run
    # on every refresh the backend makes.
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "operations.middleware.OutageMiddleware",
    ]
    # The admin and django-axes stay installed (one schema for both roles) but are not served.
    SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "axes.W002"]
SPECTACULAR_SETTINGS = {
    "TITLE": "KTRDR Operations API",
    "DESCRIPTION": "Pull-based long-running operations: data loads, training, host agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and Swagger UI need a login like every other page.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # One name for the timeframe enum, which training and market data both accept.
    "ENUM_NAME_OVERRIDES": {"TimeframeEnum": ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]},
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
if os.environ.get("KTRDR_OPERATION_LOG_LEVEL", "INFO").upper() not in _LOG_LEVELS:
    raise ImproperlyConfigured(f"KTRDR_OPERATION_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")

# --- KTRDR knobs (read through operations.conf.ktrdr_setting) -------------------------------
KTRDR = {
    # Seconds a pulled snapshot is served before the next read refreshes it.
    "OPERATIONS_CACHE_TTL": env_float("KTRDR_OPERATIONS_CACHE_TTL", 1.0),
    # Run work in worker threads of this process (embedded mode). Off when several backend
    # processes serve the site: a bridge can only be read by the process that owns it.
    "LOCAL_EXECUTION": env_bool("KTRDR_LOCAL_EXECUTION", True),
    # Worker threads for local operations; more queue as `pending`.
    "LOCAL_WORKERS": env_int("KTRDR_LOCAL_WORKERS", 2, minimum=1),
    # Where bar files, model artifacts and agent caches live.
    "DATA_DIR": Path(os.environ.get("KTRDR_DATA_DIR", DATA_ROOT / "data")),
    "MODELS_DIR": Path(os.environ.get("KTRDR_MODELS_DIR", DATA_ROOT / "models")),
    "STRATEGIES_DIR": Path(os.environ.get("KTRDR_STRATEGIES_DIR", BASE_DIR / "strategies")),
    # Interactive Brokers for local IB loads (empty host: IB only through an `ib` agent).
    "IB_HOST": os.environ.get("KTRDR_IB_HOST", ""),
    "IB_PORT": env_int("KTRDR_IB_PORT", 4002, minimum=1),
    "IB_CLIENT_ID": env_int("KTRDR_IB_CLIENT_ID", 1, minimum=0),
    # Host agents: "name=url,name=url"; the token they and the backend share.
    "AGENTS": os.environ.get("KTRDR_AGENTS", ""),
    "AGENT_TOKEN": os.environ.get("KTRDR_AGENT_TOKEN", ""),
    "TRAINING_DEFAULT_MODE": os.environ.get("KTRDR_TRAINING_DEFAULT_MODE", "auto"),
    # Where this process trains: auto (CUDA when torch sees one, else CPU), cpu, cuda[:N], mps.
    "TRAINING_DEVICE": os.environ.get("KTRDR_TRAINING_DEVICE", "auto"),
    # A training run does not start unless the models folder has this much free space (MB).
    "TRAINING_MIN_FREE_MB": env_float("KTRDR_TRAINING_MIN_FREE_MB", 64.0),
    # Training checkpoints (resume after a crash or cancel): every N epochs or T seconds,
    # whichever comes first (0 switches that trigger off), kept under CHECKPOINTS_DIR/<operation>.
    "CHECKPOINT_EVERY_EPOCHS": env_int("KTRDR_CHECKPOINT_EVERY_EPOCHS", 10),
    "CHECKPOINT_EVERY_SECONDS": env_float("KTRDR_CHECKPOINT_EVERY_SECONDS", 300.0),
    "CHECKPOINTS_DIR": Path(os.environ.get("KTRDR_CHECKPOINTS_DIR", DATA_ROOT / "checkpoints")),
    # Training warnings: a class under this share of the training labels; a class with fewer
    # rows than this in some split (training.evaluation).
    "TRAINING_MIN_CLASS_SHARE": env_float("KTRDR_TRAINING_MIN_CLASS_SHARE", 0.05),
    "TRAINING_MIN_CLASS_SAMPLES": env_int("KTRDR_TRAINING_MIN_CLASS_SAMPLES", 30, minimum=0),
    # Most bars one backtest may take (a start over more is refused, naming `end`).
    "BACKTEST_MAX_BARS": env_int("KTRDR_BACKTEST_MAX_BARS", 500_000),
    # Data loads: attempts per segment, first retry wait (doubles up to the max), the wait after
    # an IB pacing error, IB request/connect timeouts, merge-save cadence, synthetic seed.
    "DATA_LOAD_MAX_ATTEMPTS": env_int("KTRDR_DATA_LOAD_MAX_ATTEMPTS", 4, minimum=1),
    "DATA_LOAD_RETRY_BACKOFF": env_float("KTRDR_DATA_LOAD_RETRY_BACKOFF", 2.0),
    "DATA_LOAD_MAX_BACKOFF": env_float("KTRDR_DATA_LOAD_MAX_BACKOFF", 60.0),
    "IB_PACING_BACKOFF": env_float("KTRDR_IB_PACING_BACKOFF", 60.0),
    "IB_PACING_DIR": os.environ.get("KTRDR_IB_PACING_DIR", ""),
    "IB_REQUEST_TIMEOUT": env_float("KTRDR_IB_REQUEST_TIMEOUT", 60.0, minimum=1.0),
    "IB_CONNECT_TIMEOUT": env_float("KTRDR_IB_CONNECT_TIMEOUT", 10.0, minimum=1.0),
    "DATA_LOAD_SAVE_EVERY": env_int("KTRDR_DATA_LOAD_SAVE_EVERY", 10, minimum=1),
    "SYNTHETIC_SEED": env_int("KTRDR_SYNTHETIC_SEED", 0),
    "CSV_UPLOAD_MAX_BYTES": env_int("KTRDR_CSV_UPLOAD_MAX_BYTES", 64 * 1024 * 1024, minimum=1),
    "BARS_API_MAX": env_int("KTRDR_BARS_API_MAX", 10_000, minimum=1),
    # Backend → agent HTTP: timeouts (s), GET retries and their first backoff (s); how long a
    # pulled agent health snapshot is served; the largest artifact accepted and how many
    # checksum failures end an operation. AGENT_NAME/AGENT_ROLES are set by run_agent.
    "AGENT_CONNECT_TIMEOUT": env_float("KTRDR_AGENT_CONNECT_TIMEOUT", 2.0, minimum=0.1),
    # The overall deadline of one JSON exchange with an agent; also the longest a transfer may
    # stall. A refresh's operation GET has its own, shorter deadline.
    "AGENT_READ_TIMEOUT": env_float("KTRDR_AGENT_READ_TIMEOUT", 10.0, minimum=0.1),
    "AGENT_REFRESH_TIMEOUT": env_float("KTRDR_AGENT_REFRESH_TIMEOUT", 1.0, minimum=0.1),
    # Agents served over HTTPS are verified against these PEM certificates (a self-signed
    # agent's own agent.crt, or the CA that signed its certificate); empty: the system's CAs.
    "AGENT_CA_BUNDLE": env_file("KTRDR_AGENT_CA_BUNDLE"),
    "AGENT_MAX_ANSWER_BYTES": env_int("KTRDR_AGENT_MAX_ANSWER_BYTES", 8 * 1024**2, minimum=1024),
    "AGENT_BACKOFF_BASE": env_float("KTRDR_AGENT_BACKOFF_BASE", 1.0),
    "AGENT_BACKOFF_MAX": env_float("KTRDR_AGENT_BACKOFF_MAX", 30.0),
    "AGENT_MIN_TRANSFER_RATE": env_float("KTRDR_AGENT_MIN_TRANSFER_RATE", 1048576.0, minimum=1.0),
    "AGENT_RETRIES": env_int("KTRDR_AGENT_RETRIES", 2),
    "AGENT_RETRY_BACKOFF": env_float("KTRDR_AGENT_RETRY_BACKOFF", 0.05),
    "AGENT_HEALTH_TTL": env_float("KTRDR_AGENT_HEALTH_TTL", 5.0),
    "AGENT_MAX_ARTIFACT_BYTES": env_int("KTRDR_AGENT_MAX_ARTIFACT_BYTES", 2 * 1024**3, minimum=1),
    "AGENT_MAX_ARTIFACT_ATTEMPTS": env_int("KTRDR_AGENT_MAX_ARTIFACT_ATTEMPTS", 5, minimum=1),
    "AGENT_NAME": os.environ.get("KTRDR_AGENT_NAME", ""),
    "AGENT_ROLES": os.environ.get("KTRDR_AGENT_ROLES", ""),
    # Metrics: the bearer token a Prometheus scrape of /metrics presents (empty: staff sessions
    # only, and on agents the agent token); a refresh slower than its budget (seconds, per place)
    # is logged as a WARNING; the System page keeps one sample per SYSTEM_SAMPLE_SECONDS.
    "METRICS_TOKEN": os.environ.get("KTRDR_METRICS_TOKEN", ""),
    "REFRESH_BUDGET_LOCAL": env_float("KTRDR_REFRESH_BUDGET_LOCAL", 0.05),
    "REFRESH_BUDGET_AGENT": env_float("KTRDR_REFRESH_BUDGET_AGENT", 0.5),
    "SYSTEM_SAMPLE_SECONDS": env_float("KTRDR_SYSTEM_SAMPLE_SECONDS", 10.0, minimum=1.0),
    # Operation logs (docs/logs-and-retention.md): the newest lines kept per operation, and the
    # lowest level an operation's own log takes (the console keeps KTRDR_LOG_LEVEL).
    "OPERATION_LOG_MAX_LINES": env_int("KTRDR_OPERATION_LOG_MAX_LINES", 5000, minimum=10),
    "OPERATION_LOG_LEVEL": os.environ.get("KTRDR_OPERATION_LOG_LEVEL", "INFO").upper(),
    # `ops prune`'s default --older-than (a number and d, h or m; validated by the command).
    "PRUNE_OLDER_THAN": os.environ.get("KTRDR_PRUNE_OLDER_THAN", "30d"),
    # The demo user `make run` creates.
    "DEMO_USERNAME": os.environ.get("KTRDR_DEMO_USERNAME", "demo"),
    # "backend" or "agent" (set by run_agent); agents run work locally and serve it to a backend.
    "ROLE": KTRDR_ROLE,
}

if KTRDR["METRICS_TOKEN"] and len(KTRDR["METRICS_TOKEN"]) < 16:
    raise ImproperlyConfigured("KTRDR_METRICS_TOKEN must be at least 16 characters long")

_APP_LOGGERS = ("ktrdr", "operations", "marketdata", "training", "hostagents")
_APP_CONSOLE_LEVEL = os.environ.get("KTRDR_LOG_LEVEL", "INFO").upper()
# The apps log at the lower of the two levels; the console filter keeps the console at its own.
_APP_LOGGER_LEVEL = min(
    logging.getLevelName(_APP_CONSOLE_LEVEL) if _APP_CONSOLE_LEVEL in _LOG_LEVELS else logging.INFO,
    logging.getLevelName(KTRDR["OPERATION_LOG_LEVEL"]),
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "filters": {
        "console_level": {
            "()": "operations.oplog.ConsoleLevel",
            "level": _APP_CONSOLE_LEVEL,
            "loggers": _APP_LOGGERS,
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["console_level"],
        },
        # Lines that belong to an operation, kept for its page, API and `ops logs` (memory only
        # until the next write of the operation's row stores them: operations.oplog).
        "operation": {
            "class": "operations.oplog.OperationLogHandler",
            "level": KTRDR["OPERATION_LOG_LEVEL"],
        },
    },
    "root": {"handlers": ["console", "operation"], "level": "WARNING"},
    "loggers": {
        "django": {"level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
        **{name: {"level": _APP_LOGGER_LEVEL} for name in _APP_LOGGERS},
    },
}

# The largest request body the backend reads at all (ktrdr_site.bodylimit, before Django reads
# it): the largest CSV upload plus room for the form fields around it.
KTRDR_MAX_REQUEST_BYTES = env_int(
    "KTRDR_MAX_REQUEST_BYTES", KTRDR["CSV_UPLOAD_MAX_BYTES"] + 1024 * 1024, minimum=1024
)
# Threads serving requests in one server process (ktrdr_site.threaded_wsgi): each holds at most one
# database connection.
KTRDR_HTTP_THREADS = env_int("KTRDR_HTTP_THREADS", 8, minimum=1)
