"""The live operations page (issue 6): ``GET /`` + static assets, cookie sign-in, CSRF guard.

See ``AGENTS.md`` next to this file for the page contract (parity, escaping, stream handling).
"""
