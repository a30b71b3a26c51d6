"""The invoice hotel in the renderer's own MongoDB database: each document a GridFS file (bucket
`hotel`) whose metadata describes it; the outbox and the applied event ids beside them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING

from services.common.bus import ensure_processed_indexes
from services.common.ids import new_id
from services.common.mongo import Client, Database, Doc, Session
from services.common.outbox import ensure_outbox_indexes

BUCKET: Final = "hotel"
FILES: Final = f"{BUCKET}.files"
CHUNKS: Final = f"{BUCKET}.chunks"
CHUNK_BYTES: Final = 255 * 1024


@dataclass(frozen=True)
class Rendered:
    """One form of a document, rendered and not yet stored."""

    form: str
    content: bytes
    media_type: str
    filename: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class StoredDocument:
    id: str
    tenant_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    kind: str
    form: str
    language: str
    media_type: str
    filename: str
    sha256: str
    size: int
    created_at: datetime
    source_event_id: str
    rendering_id: str
    invoice_version: int
    profile_version: int


def document_from_file(doc: Doc) -> StoredDocument:
    meta = doc["metadata"]
    return StoredDocument(
        id=doc["_id"],
        tenant_id=meta["tenant_id"],
        invoice_id=meta["invoice_id"],
        invoice_number=meta["invoice_number"],
        customer_id=meta.get("customer_id", ""),
        kind=meta["kind"],
        form=meta["form"],
        language=meta["language"],
        media_type=meta["media_type"],
        filename=doc["filename"],
        sha256=meta["sha256"],
        size=int(doc["length"]),
        created_at=doc["uploadDate"],
        source_event_id=meta.get("source_event_id", ""),
        rendering_id=meta.get("rendering_id", ""),
        invoice_version=int(meta.get("invoice_version", 0)),
        profile_version=int(meta.get("profile_version", 0)),
    )


class RendererStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]
        self.files = self.db[FILES]
        self.bucket = AsyncGridFSBucket(self.db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)

    async def ensure_indexes(self) -> None:
        files = self.files
        # An invoice's documents; the newest of a kind and form (equalities only: every server
        # serves them from the index).
        await files.create_index([("metadata.tenant_id", ASCENDING), ("metadata.invoice_id", ASCENDING)])
        await files.create_index(
            [
                ("metadata.tenant_id", ASCENDING),
                ("metadata.invoice_id", ASCENDING),
                ("metadata.kind", ASCENDING),
                ("metadata.form", ASCENDING),
            ]
        )
        await files.create_index([("metadata.tenant_id", ASCENDING), ("metadata.invoice_number", ASCENDING)])
        await files.create_index("uploadDate", name="retention")
        await self.db[CHUNKS].create_index(
            [("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="chunks"
        )
        await ensure_outbox_indexes(self.db)
        await ensure_processed_indexes(self.db)

    async def store(
        self, session: Session, documents: Sequence[tuple[Rendered, Doc]], at: datetime
    ) -> list[str]:
        """Write documents (each with its metadata) in the caller's transaction; returns their ids.

        Written in the GridFS layout (a files document and its chunks), but by hand: PyMongo's
        GridFS refuses transactions, and a document must be stored with the events announcing it
        and the event id it was rendered for, or not at all. Two writes for any number of documents.
        """
        ids: list[str] = []
        files: list[Doc] = []
        chunks: list[Doc] = []
        for rendered, metadata in documents:
            document_id = new_id()
            ids.append(document_id)
            content = rendered.content
            chunks.extend(
                {
                    "_id": new_id(),
                    "files_id": document_id,
                    "n": n,
                    "data": content[start : start + CHUNK_BYTES],
                }
                for n, start in enumerate(range(0, len(content), CHUNK_BYTES))
            )
            files.append(
                {
                    "_id": document_id,
                    "length": len(content),
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": at,
                    "filename": rendered.filename,
                    "metadata": {
                        **metadata,
                        "form": rendered.form,
                        "media_type": rendered.media_type,
                        "sha256": rendered.sha256,
                    },
                }
            )
        if chunks:
            await self.db[CHUNKS].insert_many(chunks, session=session)
        if files:
            await self.files.insert_many(files, session=session)
        return ids

    async def documents_of(
        self, tenant_id: str, *, invoice_id: str = "", invoice_number: str = ""
    ) -> list[StoredDocument]:
        query: Doc = {"metadata.tenant_id": tenant_id}
        if invoice_id:
            query["metadata.invoice_id"] = invoice_id
        else:
            query["metadata.invoice_number"] = invoice_number
        docs = await self.files.find(query).to_list()
        found = [document_from_file(d) for d in docs]
        return sorted(found, key=lambda d: d.id, reverse=True)

    async def document(self, tenant_id: str, document_id: str) -> StoredDocument | None:
        doc = await self.files.find_one({"_id": document_id})
        if doc is None or doc.get("metadata", {}).get("tenant_id") != tenant_id:
            return None
        return document_from_file(doc)

    async def documents_by_ids(self, tenant_id: str, document_ids: Sequence[str]) -> list[StoredDocument]:
        """This tenant's documents among `document_ids` (point lookups on `_id`, the tenant checked)."""
        docs = await self.files.find({"_id": {"$in": list(document_ids)}}).to_list()
        return [document_from_file(d) for d in docs if d.get("metadata", {}).get("tenant_id") == tenant_id]

    async def contents(self, document_ids: Sequence[str]) -> dict[str, list[bytes]]:
        """The chunks of many documents in one read, by document, in order."""
        found: dict[str, list[bytes]] = {i: [] for i in document_ids}
        cursor = (
            self.db[CHUNKS]
            .find({"files_id": {"$in": list(document_ids)}}, projection={"files_id": 1, "n": 1, "data": 1})
            .sort([("files_id", ASCENDING), ("n", ASCENDING)])
        )
        async for chunk in cursor:
            found[chunk["files_id"]].append(bytes(chunk["data"]))
        return found

    async def latest(self, tenant_id: str, invoice_id: str, kind: str, form: str) -> StoredDocument | None:
        docs = await self.files.find(
            {
                "metadata.tenant_id": tenant_id,
                "metadata.invoice_id": invoice_id,
                "metadata.kind": kind,
                "metadata.form": form,
            }
        ).to_list()
        return document_from_file(max(docs, key=lambda d: d["_id"])) if docs else None

    async def chunks(self, document_id: str) -> Chunks:
        """The document's content as it was stored, a chunk at a time (read straight from the
        chunks: the caller has the files document already, GridFS would read it again)."""
        return Chunks(
            self.db[CHUNKS].find({"files_id": document_id}, projection={"data": 1}).sort("n", ASCENDING)
        )

    async def expired(self, before: datetime, limit: int) -> Sequence[str]:
        docs = (
            await self.files.find({"uploadDate": {"$lt": before}}, projection={"_id": 1})
            .sort("uploadDate", DESCENDING)
            .to_list(limit)
        )
        return [d["_id"] for d in docs]

    async def delete(self, document_id: str) -> None:
        await self.bucket.delete(document_id)


class Chunks:
    """A document's chunks in order, read as the caller streams them."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def readchunk(self) -> bytes:
        """The next chunk, b"" at the end."""
        doc = await anext(self._cursor, None)
        return bytes(doc["data"]) if doc is not None else b""
