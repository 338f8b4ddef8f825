-- The registry's terms in key order (ADR 0015): one row per (capability | skill | tag, agent),
-- kept by the same trigger as the typed table, in the same transaction. A query for one term
-- walks that term's keys in order from its cursor and stops after a page, whatever the
-- term's frequency; through the GIN index it had to fetch every record carrying the term and
-- sort them (about 1,000 scattered rows, 3 ms, for a capability one agent in a hundred
-- carries among 100,000, and ten times that among 1,000,000).

CREATE TABLE accord_registry_terms (
    generation integer NOT NULL,
    -- 'c' capability, 's' skill, 't' tag
    kind       "char"  NOT NULL,
    term       text    NOT NULL,
    key        text    NOT NULL,
    PRIMARY KEY (generation, kind, term, key)
);

INSERT INTO accord_registry_terms
SELECT generation, 'c', c, key FROM accord_registry_records, unnest(capabilities) c
UNION
SELECT generation, 's', s, key FROM accord_registry_records, unnest(skills) s WHERE s IS NOT NULL
UNION
SELECT generation, 't', t, key FROM accord_registry_records, unnest(tags) t;

CREATE OR REPLACE FUNCTION accord_registry_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reg jsonb;
    old_caps text[];
    old_skills text[];
    old_tags text[];
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM accord_registry_records WHERE generation = OLD.generation AND key = OLD.key
            RETURNING capabilities, skills, tags INTO old_caps, old_skills, old_tags;
        IF FOUND THEN
            DELETE FROM accord_registry_terms
             WHERE generation = OLD.generation AND key = OLD.key
               AND ((kind = 'c' AND term = ANY(old_caps))
                 OR (kind = 's' AND term = ANY(old_skills))
                 OR (kind = 't' AND term = ANY(old_tags)));
        END IF;
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
            INSERT INTO accord_registry_terms
            SELECT NEW.generation, 'c', c, NEW.key
              FROM accord_registry_records g, unnest(g.capabilities) c
             WHERE g.generation = NEW.generation AND g.key = NEW.key
            UNION
            SELECT NEW.generation, 's', s, NEW.key
              FROM accord_registry_records g, unnest(g.skills) s
             WHERE g.generation = NEW.generation AND g.key = NEW.key AND s IS NOT NULL
            UNION
            SELECT NEW.generation, 't', t, NEW.key
              FROM accord_registry_records g, unnest(g.tags) t
             WHERE g.generation = NEW.generation AND g.key = NEW.key;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
