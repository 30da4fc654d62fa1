"""`python -m billing_pipeline.api`: serve the billing API and dashboard with uvicorn; or manage tokens.

    python -m billing_pipeline.api [--host 127.0.0.1] [--port 8000] [--published URI] [--tokens FILE]
    python -m billing_pipeline.api issue-token ACCOUNTANT_ID [--days 90] [--label TEXT] [--tokens FILE]
    python -m billing_pipeline.api issue-token --admin [--days 90] [--label TEXT] [--tokens FILE]
    python -m billing_pipeline.api list-tokens [--tokens FILE]
    python -m billing_pipeline.api revoke-tokens ACCOUNTANT_ID [--tokens FILE]
    python -m billing_pipeline.api revoke-token TOKEN_ID [--tokens FILE]
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOKEN_COMMANDS:
        return _tokens_command(argv)
    parser = argparse.ArgumentParser(prog="python -m billing_pipeline.api",
                                     description="Serve the read-only billing API and dashboard.",
                                     epilog="Tokens: python -m billing_pipeline.api issue-token ACCOUNTANT_ID")
    parser.add_argument("--host", default=os.environ.get("BILLING_API_HOST", "127.0.0.1"),
                        help="interface to listen on (default 127.0.0.1; env BILLING_API_HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BILLING_API_PORT", "8000")),
                        help="port (default 8000; env BILLING_API_PORT)")
    parser.add_argument("--published", help="published snapshots, folder or s3:// URI (default: env "
                                             "BILLING_PUBLISH_URI or data/published)")
    parser.add_argument("--tokens", help="tokens file (default: env BILLING_API_TOKENS or data/api-tokens.json)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.published:
        os.environ["BILLING_PUBLISH_URI"] = args.published
    if args.tokens:
        os.environ["BILLING_API_TOKENS"] = args.tokens

    import uvicorn

    uvicorn.run("billing_pipeline.api.app:app", host=args.host, port=args.port, log_level=args.log_level,
                proxy_headers=False, server_header=False)
    return 0


TOKEN_COMMANDS = ("issue-token", "list-tokens", "revoke-tokens", "revoke-token")


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake (`--days abc`, an unknown option) as one line on stderr and exit status 2, like every other
    refused request of the token commands (argparse would print its usage block first)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def registry_problem(accountant_id: str) -> str | None:
    """Why the id is not a tenant of the registry BILLING_TENANTS names, or None (also None when it names none:
    the default registry is the warehouse's usage table, which the API never opens)."""
    from billing_pipeline.resources.tenant_registry import TenantRegistry

    registry_setting = TenantRegistry()
    if registry_setting.source_uri() is None:
        return None
    registry = registry_setting.load(None)
    status, looks_like = registry.classify(accountant_id)
    if status == "known":
        return None
    if status == "lookalike":
        return f"{accountant_id!r} is not a tenant: it looks like {looks_like!r} of the tenant registry ({registry.source})"
    return f"{accountant_id!r} is not in the tenant registry ({registry.source})"


def no_data_warning(accountant_id: str, published: str | None = None) -> str | None:
    """A warning when the published billing (what the dashboard shows) has no month with this tenant: the token
    works, but its holder would see nothing yet."""
    from billing_pipeline.api.published import NothingPublished, PublishedBilling

    where = published or os.environ.get("BILLING_PUBLISH_URI") or "data/published"
    try:
        with PublishedBilling(published).reading() as cursor:
            months = cursor.execute(
                """SELECT count(DISTINCT billing_period) FROM statements WHERE accountant_id = ?""",
                [accountant_id]).fetchone()[0]
    except NothingPublished:
        return f"warning: nothing is published yet in {where}: {accountant_id} will see no data until a month is"
    except Exception as error:  # noqa: BLE001 (a warning only: the token is issued whatever the snapshots say)
        return f"warning: could not read the published billing in {where} ({error})"
    if months == 0:
        return (f"warning: {accountant_id} has no data in any published month ({where}): the dashboard will be "
                "empty for it until a month with its costs is published")
    return None


def _tokens_command(argv: list[str]) -> int:
    """The token commands; a request that cannot be done ends with one line on stderr and exit status 2."""
    from billing_pipeline.api.auth import (DEFAULT_DAYS, InvalidRequest, TokensFileError, check_accountant_id,
                                           issue_token, list_tokens, revoke_token_id, revoke_tokens, tokens_path)
    from billing_pipeline.resources.tenant_registry import TenantRegistryError

    command = argv[0]
    parser = OneLineParser(prog=f"python -m billing_pipeline.api {command}")
    if command == "issue-token":
        parser.add_argument("accountant_id", nargs="?", help="the tenant (omit with --admin)")
        parser.add_argument("--admin", action="store_true", help="a data-team token: every tenant, read-only")
        parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"valid for (default {DEFAULT_DAYS})")
        parser.add_argument("--label", default="", help="who or what holds it (listed with the id)")
    elif command in ("revoke-tokens", "revoke-token"):
        parser.add_argument("accountant_id" if command == "revoke-tokens" else "token_id")
    parser.add_argument("--tokens", help="tokens file (default: env BILLING_API_TOKENS or data/api-tokens.json)")
    args = parser.parse_args(argv[1:])
    path = args.tokens or tokens_path()
    try:
        if command == "issue-token":
            if args.accountant_id is None and not args.admin:
                raise InvalidRequest("name the accountant id, or pass --admin for a data-team token")
            warning = None
            if not args.admin:
                check_accountant_id(args.accountant_id)
                problem = registry_problem(args.accountant_id)
                if problem:
                    raise InvalidRequest(problem)
                warning = no_data_warning(args.accountant_id)
            token = issue_token(args.accountant_id, path, days=args.days, label=args.label,
                                scope="admin" if args.admin else "tenant")
            print(token)
            print(f"(stored its sha256 in {path}, valid {args.days} days; the token itself is not stored: "
                  "hand it over now)", file=sys.stderr)
            if warning:
                print(warning, file=sys.stderr)
        elif command == "list-tokens":
            print(f"{'id':18} {'scope':7} {'accountant_id':24} {'expires_at':21} {'status':8} label")
            for grant in list_tokens(path):
                status = "expired" if grant.expired() else "valid"
                print(f"{grant.id:18} {grant.scope:7} {grant.accountant_id or '(all tenants)':24} "
                      f"{grant.expires_at or 'never (legacy)':21} {status:8} {grant.label}")
        elif command == "revoke-tokens":
            removed = revoke_tokens(args.accountant_id, path)
            print(f"revoked {removed} token(s) of {args.accountant_id} in {path}", file=sys.stderr)
        else:
            if not revoke_token_id(args.token_id, path):
                raise InvalidRequest(f"no token with id {args.token_id!r} in {path}")
            print(f"revoked token {args.token_id} in {path}", file=sys.stderr)
    except (InvalidRequest, TokensFileError, TenantRegistryError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
