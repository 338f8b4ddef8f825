-- The registry's directory (ADR 0015): the `registry` projection's `agents` rows, as typed
-- columns with indexes fitted to discovery's queries (services/registry/src/pg.rs). The
-- projection writes only its JSON rows (the same code as for the memory store); a trigger
-- derives one typed row per registered agent here, in the same transaction, so the table is
-- exactly as current as the projection's checkpoint. Typed columns give the planner real
-- statistics (expressions over jsonb do not), so a common filter scans in key order and stops
-- at a page, and a rare one uses its index.
--
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE accord_registry_records (
    generation   integer NOT NULL,
    key          text    NOT NULL,
    status       text    NOT NULL,
    visibility   text    NOT NULL,
    team         text,
    owner        text,
    capabilities text[]  NOT NULL,
    skills       text[]  NOT NULL,
    tags         text[]  NOT NULL,
    -- lower-case name and description, what `text` searches
    search       text    NOT NULL,
    last_seq     bigint  NOT NULL,
    PRIMARY KEY (generation, key)
);

CREATE INDEX accord_registry_capabilities ON accord_registry_records USING gin (capabilities);
CREATE INDEX accord_registry_skills ON accord_registry_records USING gin (skills);
CREATE INDEX accord_registry_tags ON accord_registry_records USING gin (tags);
CREATE INDEX accord_registry_search ON accord_registry_records USING gin (search gin_trgm_ops);
CREATE INDEX accord_registry_owner ON accord_registry_records (generation, owner, key);
CREATE INDEX accord_registry_team ON accord_registry_records (generation, team, key);
CREATE INDEX accord_registry_visibility ON accord_registry_records (generation, visibility, key);
CREATE INDEX accord_registry_status ON accord_registry_records (generation, status, key);

CREATE FUNCTION accord_registry_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reg jsonb;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM accord_registry_records WHERE generation = OLD.generation AND key = OLD.key;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        reg := NEW.value -> 'registration';
        IF reg IS NOT NULL AND jsonb_typeof(reg) = 'object' THEN
            INSERT INTO accord_registry_records
                (generation, key, status, visibility, team, owner, capabilities, skills, tags,
                 search, last_seq)
            VALUES (
                NEW.generation,
                NEW.key,
                coalesce(NEW.value ->> 'status', ''),
                coalesce(reg -> 'audience' ->> 'visibility', 'domain'),
                reg -> 'audience' ->> 'team',
                CASE WHEN reg -> 'owner' ? 'issuer' AND reg -> 'owner' ? 'subject'
                     THEN (reg -> 'owner' ->> 'issuer') || '#' || (reg -> 'owner' ->> 'subject') END,
                ARRAY(SELECT jsonb_array_elements_text(coalesce(reg -> 'capabilities', '[]'))),
                ARRAY(SELECT s ->> 'id' FROM jsonb_array_elements(coalesce(reg -> 'skills', '[]')) s),
                ARRAY(SELECT DISTINCT t FROM jsonb_array_elements(coalesce(reg -> 'skills', '[]')) s,
                          jsonb_array_elements_text(coalesce(s -> 'tags', '[]')) t),
                lower(coalesce(reg ->> 'name', '') || E'\n' || coalesce(reg ->> 'description', '')),
                coalesce((NEW.value ->> 'last_seq')::bigint, 0));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER accord_registry_derive_write
    AFTER INSERT OR UPDATE ON accord_rows
    FOR EACH ROW
    WHEN (NEW.projection = 'registry' AND NEW.tbl = 'agents')
    EXECUTE FUNCTION accord_registry_derive();

CREATE TRIGGER accord_registry_derive_delete
    AFTER DELETE ON accord_rows
    FOR EACH ROW
    WHEN (OLD.projection = 'registry' AND OLD.tbl = 'agents')
    EXECUTE FUNCTION accord_registry_derive();
