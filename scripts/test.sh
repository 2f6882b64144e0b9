#!/usr/bin/env bash
# Runs the test suite (installs everything first on a fresh machine). Extra arguments go to pytest.
source "$(dirname "$0")/env.sh"
python -m pytest tests "$@"
