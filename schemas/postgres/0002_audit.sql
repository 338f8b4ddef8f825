-- The audit log's Merkle tree (accord-audit): the stored hashes of the RFC 6962 tree over the
-- event stream (Go tlog layout: hash `idx` = stored_hash_index(level, n)), how many leaves they
-- cover, and the checkpoints read from the stream. Enough to serve any root and any inclusion or
-- consistency proof without reading the stream again. Written per batch in one transaction;
-- the content is a function of the log, so two writers agree.

CREATE TABLE accord_audit_hashes (
    idx  bigint PRIMARY KEY,
    hash bytea  NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE accord_audit_tree (
    id            smallint PRIMARY KEY CHECK (id = 1),
    leaves        bigint   NOT NULL,
    -- last stream sequence that is not a checkpoint (what the next checkpoint must cover)
    last_event     bigint   NOT NULL,
    -- the audit aggregate: how many CheckpointSigned events, and the last one's sequence
    audit_events   bigint   NOT NULL,
    last_audit_seq bigint   NOT NULL
);

CREATE TABLE accord_audit_checkpoints (
    seq       bigint PRIMARY KEY,
    tree_size bigint NOT NULL,
    root      bytea  NOT NULL CHECK (length(root) = 32),
    note      text   NOT NULL
);
