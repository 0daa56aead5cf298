-- sealpost schema version 16: the portal's branding as edited in the
-- console or the API (issue 16, item 2). One row at most; a NULL column
-- means "the configuration file's value" (portal.product_name, ...), and
-- no row means the file's branding as a whole. `version` grows with every
-- change: each node's portal compares it to the one it renders with, so
-- a change shows on every node without a restart.
CREATE TABLE portal_branding (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    version         INTEGER NOT NULL,
    product_name    TEXT,
    accent_color    TEXT,              -- #rrggbb, lower case
    disclaimer      TEXT,
    support_contact TEXT,
    logo            BLOB,              -- PNG, JPEG or SVG, sniffed and size-bounded on the way in
    logo_type       TEXT,              -- image/png | image/jpeg | image/svg+xml
    updated_at      INTEGER NOT NULL
) STRICT;
