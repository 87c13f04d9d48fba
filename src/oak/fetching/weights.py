"""`oak weights pull`: the released weights a profile (or the specs given) needs, fetched into `paths.weights`
under the names oak.models.published looks for, through the libraries that publish them.

timm's come from the Hugging Face Hub through huggingface_hub, which reads `HF_ENDPOINT` for a mirror: the
`model.safetensors` of the repository timm's pretrained config names. torchvision's come from
download.pytorch.org through torch.hub's downloader; `OAK_TORCHVISION_ENDPOINT` (e.g. `http://mirror:8080`)
replaces that address for a mirror that serves the same paths (`/models/<file>`).

Each file is checked against the hash it is published with: the sha256 the Hub gives a file kept in Git
LFS (its ETag), or the sha256 prefix in torchvision's file name. A file already in the folder that passes
is kept; one that fails is fetched again. A download is written under another name and renamed once it
has passed, so a failure leaves nothing under the name the loader reads. huggingface_hub resumes a
download whose connection breaks (with a range request); neither library keeps a partial file from one
run to the next, so an interrupted run starts that file over. Nothing is unpickled here: loading stays
with oak.models.weights.
"""

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import timm
import torch
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError

from oak.config.load import PROFILES
from oak.errors import OakError
from oak.models.published import Published

TORCHVISION_ENDPOINT = "OAK_TORCHVISION_ENDPOINT"
HUB_FILE = "model.safetensors"  # timm's weights in the safe format, the only one of timm's Oak loads
SHA256 = re.compile(r"[0-9a-f]{64}")
TORCHVISION_HASH = re.compile(r"-([0-9a-f]+)\.")  # as torch.hub's HASH_REGEX reads a file name
HUB_ERRORS = (OSError, httpx2.HTTPError, EntryNotFoundError)  # what huggingface_hub raises for a server or a file it cannot get


@dataclass(frozen=True)
class Release:
    """Where one weights file is published, and the sha256 (or its leading digits) it is published with."""

    url: str
    sha256: str | None  # None: published without a hash

    def matches(self, path: Path) -> bool:
        return self.sha256 is None or sha256_of(path).startswith(self.sha256)


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def one_line(error: BaseException) -> str:
    """An exception's first line: huggingface_hub's messages run to several."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def wanted_weights(targets: list[str]) -> list[Published]:
    """The weights named by each target, a profile (its rows' released weights) or a spec, each once."""
    wanted: dict[str, Published] = {}
    for target in targets:
        if target in PROFILES:
            found = profile_weights(target)
        elif ":" in target:
            found = [Published.parse(target)]
        else:
            raise OakError(
                f"{target!r}: neither a profile ({', '.join(PROFILES)}) nor a weights spec "
                "(timm:<pretrained tag> or torchvision:<builder>.<weights>)"
            )
        wanted |= {published.spec: published for published in found}
    return list(wanted.values())


def profile_weights(profile: str) -> list[Published]:
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies

    specs = sorted({run.weights for run in plan_runs(load_studies(), profile).values() if run.weights})
    if not specs:
        raise OakError(f"profile {profile!r}: its runs train their own weights and need none released; the published profile does")
    return [Published.parse(spec) for spec in specs]


def pull(published: Published, folder: Path) -> bool:
    """Put the weights' file in `folder`: True when it was downloaded, False when a copy that passes its hash was there."""
    final = folder / published.file_name()
    release = _hub_release(published, final) if published.library == "timm" else _torchvision_release(published)
    if final.exists():
        if release.matches(final):
            print(f"{final}: present, {'sha256 verified' if release.sha256 else 'published without a hash'}")
            return False
        print(f"{final}: not the published file (its sha256 differs); fetching it again")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{final}: downloading {release.url}", flush=True)
    if published.library == "timm":
        _download_from_hub(published, release, final)
    else:
        _download_from_torchvision(release, final)
    return True


def _hub_repository(published: Published) -> tuple[str, str | None]:
    """timm's `hf_hub_id`, which may pin a revision as `repo@revision`."""
    repo_id, _, revision = timm.models.get_pretrained_cfg(published.name).hf_hub_id.partition("@")
    return repo_id, revision or None


def _hub_release(published: Published, final: Path) -> Release:
    repo_id, revision = _hub_repository(published)
    url = hf_hub_url(repo_id, HUB_FILE, revision=revision)
    try:
        etag = get_hf_file_metadata(url).etag  # no retries: a server that is down answers at once
    except HUB_ERRORS as error:
        raise OakError(f"{final}: cannot get {url} ({one_line(error)}); check the network, or HF_ENDPOINT for a mirror") from None
    return Release(url, etag if etag and SHA256.fullmatch(etag) else None)


def _download_from_hub(published: Published, release: Release, final: Path) -> None:
    repo_id, revision = _hub_repository(published)
    staging = final.with_name(f".{final.name}.pull")  # beside the final name: the same file system, so the rename is atomic
    try:
        downloaded = Path(hf_hub_download(repo_id, HUB_FILE, revision=revision, local_dir=staging))
        if not release.matches(downloaded):
            raise OakError(
                f"{final}: the file at {release.url} has sha256 {sha256_of(downloaded)}, not the published {release.sha256}; "
                "nothing written: try again, or check the mirror"
            )
        os.replace(downloaded, final)
    except HUB_ERRORS as error:
        raise OakError(f"{final}: download of {release.url} failed ({one_line(error)}); nothing written: run the pull again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _torchvision_release(published: Published) -> Release:
    url = published.where_published()
    mirror = os.environ.get(TORCHVISION_ENDPOINT)
    if mirror:
        url = mirror.rstrip("/") + urlsplit(url).path
    prefix = TORCHVISION_HASH.search(Path(urlsplit(url).path).name)
    return Release(url, prefix.group(1) if prefix else None)


def _download_from_torchvision(release: Release, final: Path) -> None:
    # torch.hub writes `<final>.<random>.partial`, checks the hash prefix, then moves it to `final`; it removes the partial on failure
    try:
        torch.hub.download_url_to_file(release.url, str(final), hash_prefix=release.sha256, progress=True)
    except RuntimeError as error:  # torch.hub's hash check
        raise OakError(f"{final}: the file at {release.url} is not the published one ({one_line(error)}); nothing written") from None
    except OSError as error:
        raise OakError(
            f"{final}: cannot get {release.url} ({one_line(error)}); nothing written: "
            f"check the network, or {TORCHVISION_ENDPOINT} for a mirror"
        ) from None


def pull_all(wanted: list[Published], folder: Path) -> str:
    """Each file in turn, stopping at the first that fails (those before it stay, complete and verified); a summary line."""
    downloaded = sum(pull(published, folder) for published in wanted)
    return f"{folder}: {len(wanted)} weight files ready ({downloaded} downloaded, {len(wanted) - downloaded} already there)"
