# Sourced by scripts/serve, scripts/test and scripts/check: make .venv and
# install Adieu into it, again whenever pyproject.toml changes.
#
# By default Adieu and its test tools (pytest, Playwright, mypy, ruff,
# schemathesis) are installed. scripts/serve sets only_serving=1 first: then
# what serving needs is enough, installed without byte-compiling every module
# ahead of time, and a .venv made for it keeps no pip or setuptools (serving
# needs neither; the next full install puts pip back). A .venv with the test
# tools serves as it is.
#
# What is installed is marked by a file in .venv: .installed-HASH for
# everything (.ci/run writes it too), .installed-serve-HASH for serving alone,
# HASH being that of pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
_hash=$(sha256sum pyproject.toml | cut -c1-16)
_everything=.venv/.installed-$_hash
_serving=.venv/.installed-serve-$_hash
if [ "${only_serving:-}" = 1 ]; then
  if [ ! -f "$_everything" ] && [ ! -f "$_serving" ]; then
    _fresh=
    if [ ! -x .venv/bin/python ]; then
      python3 -m venv .venv
      _fresh=1
    fi
    .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --default-pip >/dev/null
    .venv/bin/python -m pip install --quiet --no-compile -e .
    if [ -n "$_fresh" ]; then
      .venv/bin/python -m pip uninstall --quiet --quiet --yes pip setuptools
    fi
    rm -f .venv/.installed-*
    touch "$_serving"
  fi
elif [ ! -f "$_everything" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --default-pip >/dev/null
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  rm -f .venv/.installed-*
  touch "$_everything"
fi
