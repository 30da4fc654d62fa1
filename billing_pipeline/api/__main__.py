"""`python -m billing_pipeline.api`: serve the billing API and dashboard with uvicorn; or manage tokens.

    python -m billing_pipeline.api [--host 127.0.0.1] [--port 8000] [--warehouse FILE] [--tokens FILE]
    python -m billing_pipeline.api issue-token ACCOUNTANT_ID [--tokens FILE]
    python -m billing_pipeline.api revoke-tokens ACCOUNTANT_ID [--tokens FILE]
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("issue-token", "revoke-tokens"):
        return _tokens_command(argv)
    parser = argparse.ArgumentParser(prog="python -m billing_pipeline.api",
                                     description="Serve the read-only billing API and dashboard.",
                                     epilog="Tokens: python -m billing_pipeline.api issue-token ACCOUNTANT_ID")
    parser.add_argument("--host", default=os.environ.get("BILLING_API_HOST", "127.0.0.1"),
                        help="interface to listen on (default 127.0.0.1; env BILLING_API_HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BILLING_API_PORT", "8000")),
                        help="port (default 8000; env BILLING_API_PORT)")
    parser.add_argument("--warehouse", help="DuckDB file (default: env BILLING_WAREHOUSE or data/warehouse.duckdb)")
    parser.add_argument("--tokens", help="tokens file (default: env BILLING_API_TOKENS or data/api-tokens.json)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.warehouse:
        os.environ["BILLING_WAREHOUSE"] = args.warehouse
    if args.tokens:
        os.environ["BILLING_API_TOKENS"] = args.tokens

    import uvicorn

    uvicorn.run("billing_pipeline.api.app:app", host=args.host, port=args.port, log_level=args.log_level,
                proxy_headers=False, server_header=False)
    return 0


def _tokens_command(argv: list[str]) -> int:
    from billing_pipeline.api.auth import issue_token, revoke_tokens, tokens_path

    parser = argparse.ArgumentParser(prog=f"python -m billing_pipeline.api {argv[0]}")
    parser.add_argument("accountant_id")
    parser.add_argument("--tokens", help="tokens file (default: env BILLING_API_TOKENS or data/api-tokens.json)")
    args = parser.parse_args(argv[1:])
    path = args.tokens or tokens_path()
    if argv[0] == "issue-token":
        token = issue_token(args.accountant_id, path)
        print(token)
        print(f"(stored its sha256 in {path}; the token itself is not stored: hand it over now)", file=sys.stderr)
    else:
        removed = revoke_tokens(args.accountant_id, path)
        print(f"revoked {removed} token(s) of {args.accountant_id} in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
