"""Build the Space's image from the Dockerfile as written, and run it as Spaces does, on a machine without a registry.

No container registry is reachable here, so the base (`python:3.11-slim` on a Space) is a Debian bookworm root
filesystem made from Debian's packages with mmdebstrap, with a venv first on PATH so that `python` and `pip` behave
as in the slim image (Debian's own Python refuses system-wide installs, PEP 668), imported with `podman import`.
buildah builds the Dockerfile with chroot isolation and the host's network; the host's CA bundle and pip's local
wheel folder (where the CPU torch wheel is) are mounted into the build. `podman run` fails on this kernel's cgroup
layout, so the image runs under `buildah run` (chroot isolation, the host's network) as uid 1000.

Also a script: `python -m tests.space_image` builds and prints the build time and the image size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = "localhost/mo-explorer-base:bookworm"
IMAGE = "localhost/mo-explorer:ci"
ENGINES = ("buildah", "podman", "mmdebstrap")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
VENV = "/opt/venv"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a Space's container sees besides the image's own ENV (the platform sets these at run time).
SPACES_ENV = {"SYSTEM": "spaces", "SPACE_ID": "ci/mo-explorer", "SPACE_AUTHOR_NAME": "ci",
              "SPACE_REPO_NAME": "mo-explorer", "SPACE_HOST": "ci-mo-explorer.hf.space", "HOME": "/home/user"}


def missing_engines() -> list[str]:
    """The build tools not on PATH (Debian packages buildah, podman, mmdebstrap)."""
    return [name for name in ENGINES if shutil.which(name) is None]


def wheel_folder() -> str | None:
    """The local folder pip is configured to find wheels in (the CPU torch wheel lives there), if any."""
    folders = os.environ.get("PIP_FIND_LINKS", "")
    if not folders:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                             capture_output=True, text=True)
        folders = out.stdout.strip() if out.returncode == 0 else ""
    return next((f for f in folders.split() if Path(f).is_dir()), None)


def run(cmd: list[str], log, timeout: float, **kw) -> None:
    """Run a build step, its output into log; CalledProcessError names the step."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=True, **kw)


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], capture_output=True).returncode == 0


def make_base(work: Path, log, timeout: float = 900) -> None:
    """The bookworm base with Python 3.11 in a venv first on PATH, imported as BASE (skipped when present)."""
    if image_exists(BASE):
        return
    rootfs = work / "rootfs.tar"
    run(["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates,passwd",
         f"--customize-hook=chroot \"$1\" python3 -m venv {VENV}",
         "--customize-hook=chroot \"$1\" sh -c 'rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*'",
         "bookworm", str(rootfs)], log, timeout)
    run(["podman", "import", "--change", f"ENV PATH={PATH}", "--change", "ENV LANG=C.UTF-8",
         "--change", 'CMD ["python3"]', str(rootfs), BASE], log, timeout)
    rootfs.unlink()


def build(log, timeout: float = 3000) -> float:
    """buildah bud of the Dockerfile as written onto BASE, torch from the local wheel folder; returns seconds."""
    wheels = wheel_folder()
    args = f"--cert {CA_BUNDLE}" + (" --find-links /wheels" if wheels else "")
    cmd = ["buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers=false",
           "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"BASE_IMAGE={BASE}",
           "--build-arg", f"PIP_INDEX_ARGS={args}", "-t", IMAGE, "-f", "Dockerfile", "."]
    if wheels:
        cmd[2:2] = ["-v", f"{wheels}:/wheels:ro"]
    start = time.monotonic()
    run(cmd, log, timeout, cwd=REPO)
    return time.monotonic() - start


def image_size_mb(name: str = IMAGE) -> float:
    """The image's size as podman reports it, in MB."""
    out = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", name], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip()) / 1e6


def start_container(name: str, data_dir: Path, port: int, log) -> subprocess.Popen:
    """The image's command as uid 1000 with the Spaces environment and data_dir as /data; `buildah rm name` ends it."""
    subprocess.run(["buildah", "rm", name], capture_output=True)
    subprocess.run(["buildah", "from", "--name", name, IMAGE], check=True, capture_output=True)
    env = {**SPACES_ENV, "GRADIO_SERVER_PORT": str(port)}
    cmd = ["buildah", "run", "--isolation", "chroot", "--network", "host", "--user", "1000:1000",
           "-v", f"{data_dir}:/data", *[a for k, v in env.items() for a in ("--env", f"{k}={v}")],
           "--workingdir", "/home/user/app", name, "--", "python", "app.py"]
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_container(proc: subprocess.Popen, name: str) -> None:
    """End the app (its whole process group) and remove the working container."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    subprocess.run(["buildah", "rm", name], capture_output=True)


def remove_image(name: str = IMAGE) -> None:
    """Delete the built image (3 GB): each build tags a new one, and the old ones would fill the disk run by run."""
    subprocess.run(["podman", "rmi", "--force", name], capture_output=True)


if __name__ == "__main__":
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="mo-image-"))
    with open(work / "build.log", "w") as log:
        t0 = time.monotonic()
        make_base(work, log)
        print(f"base ready in {time.monotonic() - t0:.0f} s", flush=True)
        seconds = build(log)
    print(f"built {IMAGE} in {seconds:.0f} s; image size {image_size_mb():.0f} MB; log {work / 'build.log'}")
