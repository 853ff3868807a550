# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Commit what the render wrote to the GitOps clone, and push it.

Only files the render owns are ever staged: those its list of generated files
(``.plinth-generated-<env>``) names now, those it named at the last commit (so
removals are committed too) and the list itself.  Anything else in the clone,
such as a file a person is editing, is left out of the commit.

Every function takes ``run(args, stdin=None) -> (rc, stdout, stderr)``, which
runs git in the clone: the module passes Ansible's runner, the tests a
subprocess one.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import posixpath

from ansible_collections.plinth.platform.plugins.module_utils import secrets, tree

__metaclass__ = type

STATUS_WORDS = {"A": "created", "M": "updated", "D": "removed", "R": "updated", "T": "updated"}


class RepoError(Exception):
    pass


def git(run, *args, **kwargs):
    rc, out, err = run(list(args), stdin=kwargs.get("stdin"))
    if rc != 0:
        raise RepoError("git %s failed (exit %d): %s" % (" ".join(args[:2]), rc, (err or out).strip()))
    return out


def _listed(text):
    return [line for line in (text or "").splitlines() if line and not line.startswith("#")]


def owned_paths(run, clone, subdir, scope):
    """Repository paths the render of ``scope`` owns, now or at the last commit."""
    manifest = posixpath.join(subdir, tree.manifest_name(scope)) if subdir else tree.manifest_name(scope)
    paths = set([manifest])
    now = tree.previous(os.path.join(clone, subdir), scope)
    rc, committed, _err = run(["show", "HEAD:%s" % manifest])
    for relpath in now + (_listed(committed) if rc == 0 else []):
        paths.add(posixpath.join(subdir, relpath) if subdir else relpath)
    return paths


def pending_changes(run, owned):
    """``{path: status letter}`` of owned paths that differ from the last commit."""
    out = git(run, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    changes = {}
    for entry in out.split("\0"):
        if len(entry) < 4:
            continue
        index, worktree, path = entry[0], entry[1], entry[3:]
        if path in owned:
            # Untracked files ("??") are new; otherwise the work tree's state wins over the index's.
            changes[path] = "A" if index == "?" else (worktree if worktree != " " else index)
    return changes


def secret_findings(clone, changes):
    """What looks like a secret in the files about to be committed (deleted files carry none).

    A symbolic link is reported, not followed: the render writes regular files only.
    """
    findings = []
    root = os.path.realpath(clone)
    for path in sorted(changes):
        full = os.path.join(clone, path)
        if changes[path] == "D" or not os.path.lexists(full):
            continue
        if os.path.islink(full) or not os.path.isfile(full) \
                or not os.path.realpath(full).startswith(root + os.sep):
            findings.append("%s: not a regular file inside the clone (a link, or a file behind one, is never committed)" % path)
            continue
        with open(full, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        findings.extend(secrets.scan_file(path, text))
    return findings


def commit_message(subject, changes):
    counts = {}
    for letter in changes.values():
        word = STATUS_WORDS.get(letter, "updated")
        counts[word] = counts.get(word, 0) + 1
    summary = ", ".join("%d %s" % (counts[word], word) for word in ("created", "updated", "removed")
                        if word in counts)
    body = "\n".join("%s %s" % (STATUS_WORDS.get(changes[path], "updated"), path) for path in sorted(changes))
    return "%s (%s)\n\n%s\n" % (subject, summary, body)


def commit(run, changes, message, author_name, author_email):
    """Stage and commit exactly ``changes``; return the new commit id."""
    paths = "".join("%s\0" % path for path in sorted(changes))
    identity = ["-c", "user.name=%s" % author_name, "-c", "user.email=%s" % author_email]
    git(run, "add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=paths)
    # With paths given, git commits only those paths, whatever else a person has staged.
    git(run, *(identity + ["commit", "--quiet", "--no-verify", "-m", message, "--pathspec-from-file=-",
                           "--pathspec-file-nul"]), stdin=paths)
    return git(run, "rev-parse", "HEAD").strip()


def head(run):
    rc, out, _err = run(["rev-parse", "--verify", "--quiet", "HEAD"])
    return out.strip() if rc == 0 else None


def remote_head(run, remote, branch):
    out = git(run, "ls-remote", "--heads", "--", remote, "refs/heads/%s" % branch)
    for line in out.splitlines():
        sha, _tab, ref = line.partition("\t")
        if ref == "refs/heads/%s" % branch:
            return sha
    return None


def needs_push(run, remote, branch):
    """Whether the remote branch lacks the clone's HEAD; fails when a push could not fast-forward."""
    local = head(run)
    if local is None:
        return False
    theirs = remote_head(run, remote, branch)
    if theirs is None or theirs == local:
        return theirs is None
    rc, _out, _err = run(["merge-base", "--is-ancestor", theirs, local])
    if rc != 0:
        raise RepoError("branch %s of %s has commits the clone lacks (remote %s, clone %s): update the "
                        "clone (git pull --rebase) and run again" % (branch, remote, theirs[:12], local[:12]))
    return True


def push(run, remote, branch):
    git(run, "push", "--quiet", "--", remote, "HEAD:refs/heads/%s" % branch)
