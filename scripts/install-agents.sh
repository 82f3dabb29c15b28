#!/usr/bin/env bash
# Install the pinned coding-agent CLIs used by Overseer's tests and demo into $REPO/.tools/agents.
#
#   .tools/agents/node_modules/.bin/codex   -> @openai/codex            (codex-cli 0.169.0)
#   .tools/agents/node_modules/.bin/claude  -> @anthropic-ai/claude-code (2.1.197)
#
# Idempotent: does nothing (no network) when both binaries already report the pinned versions.
# Needs node + npm and access to the npm registry (~600 MB download, native binaries).
# Override the pins with CODEX_VERSION / CLAUDE_VERSION in the environment.
set -euo pipefail

CODEX_VERSION="${CODEX_VERSION:-0.169.0}"
CLAUDE_VERSION="${CLAUDE_VERSION:-2.1.197}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$REPO/.tools/agents"
BIN="$PREFIX/node_modules/.bin"

log() { printf '[install-agents] %s\n' "$*" >&2; }

codex_version() { "$BIN/codex" --version 2>/dev/null | head -n1 || true; }    # "codex-cli 0.169.0"
claude_version() { "$BIN/claude" --version 2>/dev/null | head -n1 || true; }  # "2.1.197 (Claude Code)"

have_pinned() {
  [[ -x "$BIN/codex" && -x "$BIN/claude" ]] || return 1
  [[ "$(codex_version)" == "codex-cli $CODEX_VERSION" ]] || return 1
  [[ "$(claude_version)" == "$CLAUDE_VERSION "* || "$(claude_version)" == "$CLAUDE_VERSION" ]] || return 1
}

command -v npm >/dev/null || { log "npm not found on PATH (install Node.js >= 18)"; exit 1; }

if have_pinned; then
  log "already installed, skipping npm"
else
  for spec in "@openai/codex@$CODEX_VERSION" "@anthropic-ai/claude-code@$CLAUDE_VERSION"; do
    found="$(npm view "$spec" version 2>/dev/null || true)"
    if [[ -z "$found" ]]; then
      log "version not found in the npm registry: $spec"
      exit 1
    fi
    log "registry has $spec"
  done
  mkdir -p "$PREFIX"
  # A private package.json keeps npm from walking up into the repo (and records the pins).
  if [[ ! -f "$PREFIX/package.json" ]]; then
    printf '{\n  "name": "overseer-agent-tools",\n  "private": true\n}\n' >"$PREFIX/package.json"
  fi
  # No --ignore-scripts: claude-code's postinstall (install.cjs) links the native binary from
  # @anthropic-ai/claude-code-linux-x64 over the bin/claude.exe placeholder. npm 11 prints an
  # "install-scripts ... not yet covered by allowScripts" warning but still runs it (checked).
  log "npm install into $PREFIX (this downloads ~600 MB)"
  npm install --prefix "$PREFIX" --no-audit --no-fund --save-exact \
    "@openai/codex@$CODEX_VERSION" "@anthropic-ai/claude-code@$CLAUDE_VERSION"
  if ! have_pinned; then
    log "installed, but the binaries do not report the pinned versions:"
    log "  codex:  $(codex_version)"
    log "  claude: $(claude_version)"
    exit 1
  fi
fi

echo "codex:  $BIN/codex  ($(codex_version))"
echo "claude: $BIN/claude ($(claude_version))"
