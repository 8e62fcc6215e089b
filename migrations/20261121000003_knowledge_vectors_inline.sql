-- Passage vectors stay in the table row instead of TOAST. A vector(384) is 1,544 bytes, and
-- with a passage's text the row passes the 2 kB TOAST threshold; pgvector's type defaults to
-- EXTERNAL storage, so PostgreSQL moved the vector out of line, and every distance computed
-- outside the HNSW index (an exact scan of a small knowledge base) cost a TOAST look-up per
-- row. The text is compressed or moved out of line instead; it is read only for the few
-- passages a search returns.
alter table knowledge_chunks alter column embedding set storage plain;
