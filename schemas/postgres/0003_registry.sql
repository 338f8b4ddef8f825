-- The registry's discovery indexes (ADR 0015): partial expression indexes over the rows of the
-- registry projection's `agents` table, fitted to the queries accord-registry's PostgreSQL
-- directory sends (services/registry/src/pg.rs). pg_trgm is a trusted extension (PostgreSQL
-- 13+): the database owner may create it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- capability any-of: value->'registration'->'capabilities' ?| $1
CREATE INDEX accord_registry_capabilities ON accord_rows
    USING gin ((value -> 'registration' -> 'capabilities'))
    WHERE projection = 'registry' AND tbl = 'agents';

-- skill and tag containment: value->'registration'->'skills' @> '[{"id": ...}]'
CREATE INDEX accord_registry_skills ON accord_rows
    USING gin ((value -> 'registration' -> 'skills') jsonb_path_ops)
    WHERE projection = 'registry' AND tbl = 'agents';

-- free text over name and description: lower(...) LIKE '%...%'
CREATE INDEX accord_registry_text ON accord_rows
    USING gin ((lower(coalesce(value -> 'registration' ->> 'name', '') || ' '
                || coalesce(value -> 'registration' ->> 'description', ''))) gin_trgm_ops)
    WHERE projection = 'registry' AND tbl = 'agents';

-- visibility clauses and filters, each in key order (the pages' order)
CREATE INDEX accord_registry_visibility ON accord_rows
    (generation, (value -> 'registration' -> 'audience' ->> 'visibility'), key)
    WHERE projection = 'registry' AND tbl = 'agents';

CREATE INDEX accord_registry_owner ON accord_rows
    (generation, ((value -> 'registration' -> 'owner' ->> 'issuer') || '#'
                  || (value -> 'registration' -> 'owner' ->> 'subject')), key)
    WHERE projection = 'registry' AND tbl = 'agents';

CREATE INDEX accord_registry_team ON accord_rows
    (generation, (value -> 'registration' -> 'audience' ->> 'team'), key)
    WHERE projection = 'registry' AND tbl = 'agents';

CREATE INDEX accord_registry_status ON accord_rows
    (generation, (value ->> 'status'), key)
    WHERE projection = 'registry' AND tbl = 'agents';
