"""Running git on a repository that is data, never code: no config of the repository can make git run a program."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from aggregator.errors import DigestError

GIT_TIMEOUT = 60  # seconds one git command may take, or a read of history may wait for git's next output

# A repository is data, never code: its own config must not make git run anything. Every git call goes
# through git_command, which the callers use with plumbing only (reads: rev-parse, rev-list, cat-file; a
# commit: hash-object --no-filters, update-index --cacheinfo, write-tree, commit-tree, update-ref; no diffs,
# so no diff.external or textconv; no clean or smudge filters) and which pins, over any config file, each
# setting that could still name a program: the fsmonitor hook, hooks, the pager and the editor, signing and
# signature programs, and any transport (a partial clone's lazy fetch would otherwise run core.sshCommand or
# remote.*.uploadpack).
SAFE_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "log.showSignature=false",
    "commit.gpgSign=false",
    "gpg.program=false",
    "gpg.openpgp.program=false",
    "gpg.x509.program=false",
    "gpg.ssh.program=false",
    "protocol.allow=never",
)
SAFE_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "GIT_NO_LAZY_FETCH": "1",  # git >= 2.44; protocol.allow=never covers older ones
    "GIT_OPTIONAL_LOCKS": "0",
}
ONLY_REPOSITORY_CONFIG = {
    "GIT_CONFIG_NOSYSTEM": "1",  # neither the system's nor the user's config files: only the repository's
    "GIT_CONFIG_GLOBAL": "/dev/null",  # (git >= 2.32), overridden by the settings above
}
UNSAFE_ENV = ("GIT_EXTERNAL_DIFF", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_PROXY_COMMAND", "GIT_EDITOR",
              "GIT_SEQUENCE_EDITOR", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


def git_command(repo: Path, *args: str, user_config: bool = False,
                pins: Sequence[tuple[str, str]] = ()) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one git call on `repo` that no repository config can make run a
    program. `user_config`: also read the user's and the system's config files (for a commit's author),
    still under the same pinned settings. `pins`: more settings (key, value) over every config file, passed
    in the environment so that any key (a filter's name may hold "=") is read as written."""
    config = [part for setting in SAFE_CONFIG for part in ("-c", setting)]
    env = {k: v for k, v in os.environ.items() if k not in UNSAFE_ENV and not k.startswith("GIT_CONFIG_")}
    extra = {"GIT_CONFIG_COUNT": str(len(pins))} if pins else {}
    for i, (key, value) in enumerate(pins):
        extra[f"GIT_CONFIG_KEY_{i}"], extra[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return (["git", "--no-pager", *config, "-C", str(repo), *args],
            {**env, **SAFE_ENV, **({} if user_config else ONLY_REPOSITORY_CONFIG), **extra})


def filters_off(repo: Path) -> tuple[tuple[str, str], ...]:
    """Pins that make every filter driver the repository's config defines (through includes too) no filter:
    no clean, smudge or process command, and not required. Writing the index compares "racily clean"
    files with their content through their clean filter, so any command that writes the index needs them."""
    try:
        keys = git(repo, "config", "--name-only", "--get-regexp", r"^filter\.")
    except DigestError:  # git config exits 1 when nothing matches
        return ()
    names = sorted({key[len("filter."):key.rindex(".")] for key in keys.splitlines() if key.count(".") >= 2})
    return tuple((f"filter.{name}.{part}", value) for name in names
                 for part, value in (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")))


def git(repo: Path, *args: str, user_config: bool = False, pins: Sequence[tuple[str, str]] = (),
        stdin: bytes | None = None) -> str:
    """Run one git command on `repo` (as git_command makes it), given `stdin` (else nothing) on its standard
    input; its standard output, or DigestError with git's first line of complaint."""
    command, env = git_command(repo, *args, user_config=user_config, pins=pins)
    try:
        done = subprocess.run(command, capture_output=True, env=env, timeout=GIT_TIMEOUT, check=False,
                              **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}))
    except FileNotFoundError:
        raise DigestError("the git command is not installed") from None
    except subprocess.TimeoutExpired:
        raise DigestError(f"{repo}: git took longer than {GIT_TIMEOUT} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DigestError(f"{repo}: {message[0] if message else 'git failed'}")
    return done.stdout.decode("utf-8", "replace")
