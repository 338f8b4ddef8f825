-- Accord projection storage (applied at start by accord-store, in order, once each).
--
-- Every projection keeps its rows in generations: the active one answers queries; a rebuild
-- replays the log into a fresh generation and then switches. A generation's checkpoint is the
-- last stream sequence applied to it, written in the same transaction as the rows.

CREATE TABLE accord_projections (
    name        text        NOT NULL,
    generation  integer     NOT NULL,
    checkpoint  bigint      NOT NULL DEFAULT 0,
    active      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    switched_at timestamptz,
    PRIMARY KEY (name, generation)
);

-- At most one active generation per projection.
CREATE UNIQUE INDEX accord_projections_one_active ON accord_projections (name) WHERE active;

CREATE TABLE accord_rows (
    projection text    NOT NULL,
    generation integer NOT NULL,
    tbl        text    NOT NULL,
    key        text    NOT NULL,
    value      jsonb   NOT NULL,
    -- stream sequence of the event that last wrote the row
    seq        bigint  NOT NULL,
    PRIMARY KEY (projection, generation, tbl, key)
);
