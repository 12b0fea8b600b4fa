-- The media library: images uploaded for issues. Each file is stored once,
-- under the SHA-256 of its stored bytes (data_dir/media/HASH.EXT), decoded,
-- stripped of metadata and resized before it is hashed; the row is written
-- only after the file is durable. The original file name is kept for
-- display only and never names a file.
CREATE TABLE media (
    id            INTEGER PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
    ext           TEXT NOT NULL CHECK (ext IN ('jpg', 'png', 'gif')),
    width         INTEGER NOT NULL CHECK (width > 0),
    height        INTEGER NOT NULL CHECK (height > 0),
    bytes         INTEGER NOT NULL CHECK (bytes > 0),
    alt           TEXT NOT NULL CHECK (length(trim(alt)) > 0),
    original_name TEXT NOT NULL DEFAULT '',
    uploaded_by   TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX media_created ON media (created_at);
