# Python side of the multilang tests: a venv with pystorm, streamparse, msgpack and redis from
# PyPI, plus a redis-server for the Python RedisBolt. Included by the root Makefile.
# CI machines start bare, so everything missing is installed here; a stamp keeps
# repeated runs instant until the requirements change.

MULTILANG_VENV ?= .cache/venv
MULTILANG_REQS := multilang/python/requirements.txt multilang/python/constraints.txt
MULTILANG_STAMP := $(MULTILANG_VENV)/.squall-multilang-stamp

.PHONY: multilang-venv multilang-redis-server multilang-clean

multilang-venv: $(MULTILANG_STAMP) multilang-redis-server

multilang-redis-server:
	@command -v redis-server >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; }

$(MULTILANG_STAMP): $(MULTILANG_REQS)
	@command -v python3 >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv; }
	@# `python3 -m venv` exists on Debian without ensurepip; try it, install python3-venv if it fails.
	@rm -rf $(MULTILANG_VENV)
	@python3 -m venv $(MULTILANG_VENV) 2>/dev/null || { \
		rm -rf $(MULTILANG_VENV); \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv && python3 -m venv $(MULTILANG_VENV); }
	$(MULTILANG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r multilang/python/requirements.txt
	$(MULTILANG_VENV)/bin/python -c "import pystorm, streamparse, redis, msgpack; print('multilang venv: pystorm', pystorm.__version__, 'streamparse', streamparse.__version__, 'redis', redis.__version__, 'msgpack', msgpack.version)"
	@touch $@

multilang-clean:
	rm -rf $(MULTILANG_VENV)
