#!/usr/bin/env bash
# The tests' one-time install step (the README's and CI's): the real tools the tests drive beyond Rust.
#   - bsdtar (libarchive-tools), GNU tar, git: archives are extracted and compared with real tools;
#   - unshare/script (util-linux, bsdutils), tmux: PID-namespace and terminal-view tests;
#   - the pinned Claude Code CLI (npm), for the real-agent integration tests.
# Idempotent: installs only what is missing.
set -euo pipefail

CLAUDE_CODE_VERSION="${CLAUDE_CODE_VERSION:-2.1.330}"

missing=()
command -v bsdtar >/dev/null 2>&1 || missing+=(libarchive-tools)
command -v tar >/dev/null 2>&1 || missing+=(tar)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if command -v npm >/dev/null 2>&1; then
  if ! claude --version 2>/dev/null | grep -q "^${CLAUDE_CODE_VERSION}"; then
    echo "install-deps: installing @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"
    $sudo npm install -g --no-fund --no-audit "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"
  fi
  claude --version
else
  echo "install-deps: npm not found: the real-CLI tests will be skipped (they fail under CI=true)" >&2
fi
