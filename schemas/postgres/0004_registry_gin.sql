-- The registry's GIN indexes without a pending list (ADR 0015). With `fastupdate` on (the
-- default), inserts go to an unsorted pending list that every search reads through until
-- VACUUM merges it; after a replay of 100,000 records a one-tag lookup read 248 pages of it
-- (4.9 ms) instead of 2 (0.07 ms). Discovery is read far more than records change, so each
-- insert updates the index directly. What is already pending is merged now.

ALTER INDEX accord_registry_capabilities SET (fastupdate = off);
ALTER INDEX accord_registry_skills SET (fastupdate = off);
ALTER INDEX accord_registry_tags SET (fastupdate = off);
ALTER INDEX accord_registry_search SET (fastupdate = off);

SELECT gin_clean_pending_list('accord_registry_capabilities'::regclass),
       gin_clean_pending_list('accord_registry_skills'::regclass),
       gin_clean_pending_list('accord_registry_tags'::regclass),
       gin_clean_pending_list('accord_registry_search'::regclass);
