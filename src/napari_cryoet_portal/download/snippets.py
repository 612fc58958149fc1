""""Copy as…" text for a selection (AWS CLI, cURL, Python with the official client) and links
to the portal's own pages (dataset, run, Neuroglancer view).

Every snippet writes each file to ``DEST/<key>``, the layout of :func:`.transfer.download`,
so the three ways and this plugin's downloader fill the same tree.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote

from ..portal.client import DEFAULT_API_URL
from ..portal.records import Tomogram
from .selection import Remote, Selection
from .transfer import Listing

__all__ = [
    "DEFAULT_WEB_URL",
    "WEB_URL_ENV",
    "AWS_CLI_NOTE",
    "PortalLinks",
    "aws_cli_snippet",
    "curl_snippet",
    "default_web_url",
    "neuroglancer_url",
    "portal_links",
    "python_snippet",
    "selection_links",
]

DEFAULT_WEB_URL = "https://cryoetdataportal.czscience.com"
WEB_URL_ENV = "CRYOET_PORTAL_WEB_URL"

AWS_CLI_NOTE = (
    "For whole datasets the AWS CLI is the recommended path: it transfers files in parallel "
    "and `aws s3 sync` skips files already downloaded, so it resumes."
)


def aws_cli_snippet(selection: Selection, dest: str = ".") -> str:
    """``aws s3 sync`` for folders, ``aws s3 cp`` for single files (no AWS account needed)."""
    lines = _header(selection)
    for remote in selection.remotes:
        target = _dest(dest, remote)
        if remote.folder:
            command = ["aws", "s3", "sync", "--no-sign-request", f"s3://{remote.bucket}/{remote.key}", target]
            if remote.include:
                command += ["--exclude", "*", "--include", remote.include]
        else:
            command = ["aws", "s3", "cp", "--no-sign-request", remote.s3_url, target]
        lines.append(_shell(command))
    return "\n".join(lines) + "\n"


def curl_snippet(listing: Listing, dest: str = ".") -> str:
    """One ``curl`` per file over HTTPS (folders need the listing: cURL cannot list)."""
    lines = _header(listing.selection)
    for task in listing.tasks:
        if task.https_url is None:
            continue
        target = _join(dest, task.remote.key)
        lines.append(_shell(["curl", "--fail", "--location", "--create-dirs", "-o", target, task.https_url]))
    return "\n".join(lines) + "\n"


def python_snippet(selection: Selection, dest: str = ".", *, api_url: str | None = None) -> str:
    """A script using the official ``cryoet_data_portal`` client (its classes and methods)."""
    head = [f"# {line}" for line in _note(selection)]
    client = "Client()" if api_url in (None, DEFAULT_API_URL) else f"Client({api_url!r})"
    kind, id = selection.kind, selection.id
    body: list[str]
    if kind == "dataset" and not selection.annotations_only:
        imports = "Client, Dataset"
        body = [f"Dataset.get_by_id(client, {id}).download_everything(dest_path={dest!r})"]
    elif kind == "run" and not selection.annotations_only:
        imports = "Client, Run"
        body = [f"Run.get_by_id(client, {id}).download_everything(dest_path={_py_join(dest, str(selection.dataset_id))})"]
    elif kind in ("dataset", "run"):
        imports = "Annotation, Client"
        where = "Annotation.run.dataset_id" if kind == "dataset" else "Annotation.run_id"
        body = [
            f"for annotation in Annotation.find(client, [{where} == {id}]):",
            "    folder = os.path.dirname(annotation.s3_metadata_path.split('/', 3)[3])",
            f"    annotation.download(dest_path=os.path.join({dest!r}, folder))",
        ]
    elif kind == "tomogram":
        imports = "Client, Tomogram"
        method = "download_mrcfile" if selection.format == "mrc" else "download_omezarr"
        body = [f"Tomogram.get_by_id(client, {id}).{method}(dest_path={_py_parent(dest, selection.remotes[0])})"]
    elif kind == "annotation":
        imports = "Annotation, Client"
        fmt = f", format={selection.format!r}" if selection.format else ""
        body = [f"Annotation.get_by_id(client, {id}).download(dest_path={_py_parent(dest, selection.remotes[-1])}{fmt})"]
    else:
        imports = "AnnotationFile, Client"
        body = [f"AnnotationFile.get_by_id(client, {id}).download(dest_path={_py_parent(dest, selection.remotes[0])})"]
    uses_os = any("os." in line for line in body)
    lines = head + (["import os", ""] if uses_os else [])
    lines += [f"from cryoet_data_portal import {imports}", "", f"client = {client}", *body]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PortalLinks:
    """Pages of the portal's website; None where there is none."""

    dataset: str | None = None
    run: str | None = None
    #: the portal's Neuroglancer view of a tomogram (its ``neuroglancerConfig``)
    neuroglancer: str | None = None


def default_web_url() -> str:
    """``$CRYOET_PORTAL_WEB_URL`` or the real portal's website."""
    return (os.environ.get(WEB_URL_ENV) or DEFAULT_WEB_URL).rstrip("/")


def neuroglancer_url(run_id: int, config_json: str, web_url: str | None = None) -> str:
    """The portal's viewer: ``/view/runs/{run}#!{state}``, the state URI-component encoded,
    as the portal's website builds it."""
    base = (web_url or default_web_url()).rstrip("/")
    return f"{base}/view/runs/{run_id}#!{quote(config_json, safe=_URI_COMPONENT_SAFE)}"


def portal_links(
    *,
    dataset_id: int | None = None,
    run_id: int | None = None,
    tomogram: Tomogram | None = None,
    web_url: str | None = None,
) -> PortalLinks:
    """Links for a dataset, a run and a tomogram (the Neuroglancer view needs the tomogram's
    ``neuroglancerConfig`` and its run; the portal's run page opens its visualization default's)."""
    base = (web_url or default_web_url()).rstrip("/")
    run_id = run_id if run_id is not None else (tomogram.run_id if tomogram is not None else None)
    viewer = None
    if tomogram is not None and tomogram.neuroglancer_config_json and run_id is not None:
        viewer = neuroglancer_url(run_id, tomogram.neuroglancer_config_json, base)
    return PortalLinks(
        dataset=f"{base}/datasets/{dataset_id}" if dataset_id is not None else None,
        run=f"{base}/runs/{run_id}" if run_id is not None else None,
        neuroglancer=viewer,
    )


def selection_links(selection: Selection, web_url: str | None = None) -> PortalLinks:
    """:func:`portal_links` for what a selection belongs to."""
    return portal_links(
        dataset_id=selection.dataset_id, run_id=selection.run_id, tomogram=selection.tomogram, web_url=web_url
    )


# encodeURIComponent leaves these unescaped
_URI_COMPONENT_SAFE = "-_.!~*'()"


def _header(selection: Selection) -> list[str]:
    return [f"# {line}" for line in _note(selection)]


def _note(selection: Selection) -> Iterable[str]:
    yield selection.description
    if selection.kind == "dataset":
        yield AWS_CLI_NOTE


def _dest(dest: str, remote: Remote) -> str:
    return _join(dest, remote.key).rstrip("/") + ("/" if remote.folder else "")


def _join(dest: str, key: str) -> str:
    return f"{dest.rstrip('/')}/{key}" if dest not in ("", ".") else key


def _parent_key(remote: Remote) -> str:
    return remote.key.rstrip("/").rsplit("/", 1)[0]


def _py_join(dest: str, key: str) -> str:
    return repr(_join(dest, key))


def _py_parent(dest: str, remote: Remote) -> str:
    """The official client writes a file or store into ``dest_path`` by its last name."""
    return repr(_join(dest, _parent_key(remote)))


def _shell(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)
