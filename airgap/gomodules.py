"""Building Go binaries from the module proxy alone, the way every airgap build does: a small
main module of our own that requires the module to build (repeating its replaces), a static
`go build` renamed into place, a lock per release folder, and build-info.json.
"""

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from airgap import cache

VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
WORK_MODULE = "plinth.build/kubernetes"


class BuildError(Exception):
    pass


def log(message):
    print(message, flush=True)


def parse_version(text):
    match = VERSION_RE.match(text.strip())
    if not match:
        raise BuildError("--version %r: expected MAJOR.MINOR.PATCH, e.g. 1.36.3" % text)
    return tuple(int(part) for part in match.groups())


def run_go(args, cwd=None, env=None, capture=True):
    command = ["go"] + args
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
    )
    return result


def module_info(module, version):
    """Download module@version (a version or a query such as v1.36); None if absent."""
    result = run_go(["mod", "download", "-json", "%s@%s" % (module, version)])
    try:
        info = json.loads(result.stdout)
    except ValueError:
        return None
    if result.returncode != 0 or info.get("Error"):
        return None
    return info


def read_go_mod(path):
    """The parts of a go.mod this build needs: go/godebug lines, requires, replaces."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    directives = {"go": None, "godebug": [], "require": {}, "replace": []}
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            add_directive(directives, block, line)
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest == "(":
            block = keyword
        elif keyword in ("go", "godebug", "require", "replace"):
            add_directive(directives, keyword, rest)
    return directives


def add_directive(directives, keyword, body):
    if keyword == "go":
        directives["go"] = body
    elif keyword == "godebug":
        directives["godebug"].append(body)
    elif keyword == "require":
        parts = body.split()
        directives["require"][parts[0]] = parts[1]
    elif keyword == "replace":
        old, _, new = body.partition("=>")
        directives["replace"].append((old.strip(), new.strip()))


def module_replacements(go_mod):
    """A plain module's own replaces, which a requiring module must repeat."""
    local = [old for old, new in go_mod["replace"] if new.startswith(".")]
    if local:
        raise BuildError("replaced by local paths, cannot be built as a dependency: %s"
                         % ", ".join(local))
    return ["%s => %s" % pair for pair in go_mod["replace"]], []


def write_work_module(work_dir, module, version, go_mod, replaces):
    lines = ["module %s" % WORK_MODULE, ""]
    if go_mod["go"]:
        lines += ["go %s" % go_mod["go"], ""]
    for setting in go_mod["godebug"]:
        lines.append("godebug %s" % setting)
    if go_mod["godebug"]:
        lines.append("")
    lines += ["require %s %s" % (module, version), ""]
    if replaces:
        lines.append("replace (")
        lines += ["\t%s" % line for line in replaces]
        lines.append(")")
    content = "\n".join(lines) + "\n"
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, "go.mod")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(content)
    os.replace(path + ".tmp", path)


def prepare_work_module(work_dir, info, packages, replaces_for):
    """A main module requiring info's module, with its requirements resolved for packages."""
    go_mod = read_go_mod(info["GoMod"])
    replaces, stubs = replaces_for(go_mod)
    write_work_module(work_dir, info["Path"], info["Version"], go_mod, replaces)
    result = run_go(["get"] + ["%s@%s" % (pkg, info["Version"]) for pkg in packages], cwd=work_dir)
    if result.returncode != 0:
        raise BuildError("go get in %s failed:\n%s" % (work_dir, result.stderr))
    return stubs


def proxy_info(info):
    """The proxy's .info record (Version, Time, and Origin when the proxy keeps it)."""
    try:
        with open(info["Info"], encoding="utf-8") as handle:
            return json.load(handle)
    except (KeyError, OSError, ValueError):
        return {}


def module_time(info):
    published = proxy_info(info).get("Time") or "1970-01-01T00:00:00Z"
    return re.sub(r"\.\d+Z$", "Z", published)


def module_origin(info):
    return proxy_info(info).get("Origin") or {}


def go_build(work_dir, package, target, ldflags, tags, arch, extra=()):
    """A static ``go build`` of ``package`` to ``target``, renamed into place when done."""
    env = dict(os.environ, CGO_ENABLED="0", GOOS="linux", GOARCH=arch)
    directory = os.path.dirname(target)
    handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), dir=directory)
    os.close(handle)
    args = ["build", "-trimpath"] + list(extra) + ["-ldflags", ldflags, "-o", temp]
    if tags:
        args += ["-tags", tags]
    started = time.monotonic()
    try:
        result = run_go(args + [package], cwd=work_dir, env=env, capture=False)
        if result.returncode != 0:
            raise BuildError("go build %s failed (exit %d)" % (package, result.returncode))
        os.chmod(temp, 0o755)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return time.monotonic() - started


@contextlib.contextmanager
def locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remove_partial_builds(bin_dir):
    """Temporary outputs of a build that was killed; only called under the lock."""
    for name in os.listdir(bin_dir):
        if name.startswith("."):
            os.unlink(os.path.join(bin_dir, name))


def build_once(release_dir, target, force, record, build, beside=None):
    """Build ``target`` (a binary in ``release_dir``/bin) under the release folder's lock, unless it
    is already there. ``record`` and what ``build(build_info)`` adds go into build-info.json;
    ``beside()`` installs what sits next to the binary, under the same lock, built or not.
    Returns the build's seconds (None when skipped) and what ``beside`` returned."""
    bin_dir = os.path.dirname(target)
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    with locked(os.path.join(release_dir, ".lock")):
        remove_partial_builds(bin_dir)
        seconds = None
        if os.path.exists(target) and not force:
            log("%-24s already built, skipped" % os.path.basename(target))
        else:
            build_info = load_build_info(info_path)
            build_info.update(record)
            seconds = build(build_info)
            save_build_info(info_path, build_info)
        extra = beside() if beside else None
    if seconds is not None:
        report_timings([(os.path.basename(target), seconds)], bin_dir)
    return seconds, extra


def load_build_info(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"binaries": {}}


def save_build_info(path, data):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def go_version():
    return run_go(["env", "GOVERSION"]).stdout.strip()


def report_timings(timings, bin_dir):
    for name, seconds in timings:
        log("built %-24s %7.1f s  %6.1f MiB" % (
            name, seconds, os.path.getsize(os.path.join(bin_dir, name)) / 2**20))
    if timings:
        log("total %-24s %7.1f s" % ("", sum(seconds for _, seconds in timings)))


def build_packages(work_dir, info, module, names, packages, bin_dir, ldflags, tags, arch, build_info):
    """go build each package of one prepared work module into bin_dir/<name>; returns [(name, seconds)]."""
    timings = []
    for name, package in zip(names, packages):
        log("building %s ..." % name)
        seconds = go_build(work_dir, package, os.path.join(bin_dir, name), ldflags, tags, arch)
        timings.append((name, seconds))
        build_info["binaries"][name] = build_record(info, module, package, arch, seconds)
    return timings


def build_record(info, module, package, arch, seconds):
    """A binary's entry in build-info.json."""
    return {"version": info["Version"], "module": module, "package": package,
            "go": go_version(), "arch": arch, "build_seconds": round(seconds, 1)}


def not_built(bin_dir, names, force):
    """The names to build: all with force, else those without a binary in bin_dir (the others are logged)."""
    wanted = [name for name in names if force or not os.path.exists(os.path.join(bin_dir, name))]
    for name in sorted(set(names) - set(wanted)):
        log("%-24s already built, skipped" % name)
    return wanted


def stop_on_sigterm(tool):
    """SIGTERM leaves through SystemExit, which unwinds the finally blocks that remove temporary files."""
    def stop(signum, _frame):
        sys.exit("%s: stopped by signal %d" % (tool, signum))
    signal.signal(signal.SIGTERM, stop)


def add_build_options(parser):
    """The options every single-release builder takes: the cache, the architecture, --force."""
    parser.add_argument("--cache", default=cache.root(),
                        help="cache root (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--arch", default="amd64", help="GOARCH to build for (default amd64)")
    parser.add_argument("--force", action="store_true", help="rebuild a binary already in the cache")


def run_tool(tool, parse_args, build, argv=None, errors=()):
    """A build tool's entry point: the cache path made absolute, a failure said in one line."""
    stop_on_sigterm(tool)
    try:
        args = parse_args(argv)
        args.cache = os.path.abspath(os.path.expanduser(args.cache))
        build(args)
    except (BuildError,) + tuple(errors) as error:
        sys.exit("%s: %s" % (tool, error))
