# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Take chains out of an ``iptables-save`` dump, keeping every other rule.

``without_chains(text, prefixes)`` reads what ``iptables-save`` (or ``ip6tables-save``)
printed and returns the input for ``iptables-restore`` that removes the user-defined
chains whose names start with one of ``prefixes``, every rule in them and every rule
that jumps or goes to them. Only the tables that change are in that input:
``iptables-restore`` replaces each table it is given and leaves the others alone,
so a table is given whole, with all the rules that are not removed.

Built-in chains (INPUT, FORWARD, POSTROUTING, ...) are never removed, whatever their
name: only chains declared with the policy ``-`` are user-defined.
"""

from __future__ import absolute_import, annotations, division, print_function

import shlex

__metaclass__ = type

# iptables-save writes the target as -j; -g sends a packet to a chain without coming back.
TARGET_OPTIONS = frozenset(("-j", "--jump", "-g", "--goto"))
RULE_OPTIONS = frozenset(("-A", "--append", "-I", "--insert"))


def without_chains(text, prefixes):
    """``{"restore", "tables", "chains", "rules"}`` for removing the prefixed chains from ``text``.

    ``restore`` is the ``iptables-restore`` input (empty when nothing is to be removed),
    ``tables`` the tables it replaces, ``chains`` the removed chains as ``table:chain``
    and ``rules`` how many rules go. Raises ValueError naming the line that cannot be read.
    """
    prefixes = _check_prefixes(prefixes)
    if not isinstance(text, str):
        raise ValueError("expects the text iptables-save printed, got %s" % type(text).__name__)
    result = {"restore": "", "tables": [], "chains": [], "rules": 0}
    blocks = []
    for table, lines in _tables(text):
        kept, chains, rules = _prune_table(table, lines, prefixes)
        if not chains and not rules:
            continue
        result["tables"].append(table)
        result["chains"].extend("%s:%s" % (table, chain) for chain in chains)
        result["rules"] += rules
        blocks.append("\n".join(["*" + table] + kept + ["COMMIT"]))
    if blocks:
        result["restore"] = "\n".join(blocks) + "\n"
    return result


def _check_prefixes(prefixes):
    if isinstance(prefixes, str) or not isinstance(prefixes, (list, tuple)):
        raise ValueError("prefixes: got %r; must be a list of chain name prefixes" % (prefixes,))
    bad = [p for p in prefixes if not isinstance(p, str) or not p.strip()]
    if bad:
        raise ValueError("prefixes: got %r; each prefix must be a non-empty string (an empty one names every chain)"
                         % (bad[0],))
    return tuple(prefixes)


def _tables(text):
    """``[(table, [(line number, line), ...]), ...]`` in the order of the dump."""
    tables, current = [], None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            if current is not None:
                raise ValueError("line %d: %r starts a table before table %s is committed" % (number, line, current[0]))
            current = (line[1:], [])
        elif line == "COMMIT":
            if current is None:
                raise ValueError("line %d: COMMIT outside a table" % number)
            tables.append(current)
            current = None
        elif current is None:
            raise ValueError("line %d: %r is outside a table; iptables-save output starts each table with *<name>"
                             % (number, line))
        else:
            current[1].append((number, line))
    if current is not None:
        raise ValueError("table %s has no COMMIT; the iptables-save output is cut short" % current[0])
    return tables


def _prune_table(table, lines, prefixes):
    """(kept lines, removed chains, number of removed rules) of one table."""
    removed = []
    for number, line in lines:
        if line.startswith(":"):
            name, policy = _chain_declaration(number, line)
            if policy == "-" and name.startswith(prefixes):
                removed.append(name)
    gone = frozenset(removed)
    kept, rules = [], 0
    for number, line in lines:
        if line.startswith(":"):
            if _chain_declaration(number, line)[0] not in gone:
                kept.append(line)
            continue
        chain, targets = _rule(number, line)
        if chain in gone or targets & gone:
            rules += 1
        else:
            kept.append(line)
    return kept, removed, rules


def _chain_declaration(number, line):
    """(name, policy) of ``:NAME POLICY [packets:bytes]``."""
    fields = line[1:].split()
    if len(fields) < 2:
        raise ValueError("line %d: %r is not a chain declaration (:NAME POLICY [packets:bytes])" % (number, line))
    return fields[0], fields[1]


def _rule(number, line):
    """(chain, set of jump and goto targets) of ``[packets:bytes] -A CHAIN ...``."""
    if line.startswith("["):
        line = line.split("]", 1)[-1].strip()
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError("line %d: %r cannot be split into words (%s)" % (number, line, exc))
    if len(words) < 2 or words[0] not in RULE_OPTIONS:
        raise ValueError("line %d: %r is not a rule (-A CHAIN ...)" % (number, line))
    targets = set(after for option, after in zip(words[2:], words[3:]) if option in TARGET_OPTIONS)
    return words[1], targets
