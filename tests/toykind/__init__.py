"""A Django app that only exists for the tests: it brings its own operation kind, `toy`.

It proves a new kind needs one app alone — nothing in operations/ or hostagents/ names it. The
suite registers it in the test process with `register_kind(TOY)`; an agent process gets it as a
real installed app through `KTRDR_EXTRA_APPS=tests.toykind`.
"""
