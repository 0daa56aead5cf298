-- sealpost schema version 21: the generation of the policy configuration
-- (issue 17, item 8). Every configuration commit bumps it, so a store that
-- keeps the configuration in memory (to check a change to one object
-- without reading the whole configuration inside the writer transaction
-- SMTP commits share) knows when what it holds is stale.
CREATE TABLE config_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;
INSERT INTO config_generation (id, generation) VALUES (1, 0);
