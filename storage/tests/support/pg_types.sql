-- The type-fidelity table: one column per type an export must keep exactly
-- (issue 3, item 3), and rows of edge values. Shared by the export and
-- rehydration tests of the PostgreSQL store.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺', 'it''s "quoted"');
CREATE DOMAIN positive_amount AS numeric(20,4) CHECK (VALUE > 0);
CREATE DOMAIN label_list AS text[];
CREATE TABLE zoo (
    id    integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint, o oid,
    num numeric, num_s numeric(30,10),
    f4 real, f8 double precision,
    b boolean,
    t text, vc varchar(10), ch char(5),
    bin bytea,
    d date, tm time, tmtz timetz, ts timestamp, tstz timestamptz,
    iv interval, u uuid, j json, jb jsonb,
    ia integer[], ta text[], na numeric[], ba bytea[], fa double precision[],
    tsa timestamptz[], ia2 integer[],
    e mood, ea mood[], dom positive_amount, dl label_list,
    ip inet, net cidr, mac macaddr, rng int4range, bits bit varying(8),
    gen numeric GENERATED ALWAYS AS (num_s * 2) STORED
);
INSERT INTO zoo (id, i2, i4, i8, o, num, num_s, f4, f8, b, t, vc, ch, bin, d, tm, tmtz, ts, tstz,
                 iv, u, j, jb, ia, ta, na, ba, fa, tsa, ia2, e, ea, dom, dl, ip, net, mac, rng, bits)
VALUES
 (1, 1, 2, 3, 4, '12.50', '1.5', 0.1, 0.1, true, 'plain', 'v', 'ab', '\x00ff00',
  '2025-01-31', '09:30:00.5', '12:34:56+05:30', '2025-12-31 23:59:59.999999',
  '2025-06-01 12:00:00.5+02', '1 year 2 months 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', E'{"a" : 1,\n "a": [1, 2.50]}',
  '{"b": 1.000000000000000000001, "a": null, "c": "marker"}',
  '{1,NULL,3}', '{"a,b","c\"d",NULL,"NULL","",x}', '{1.10,NaN}', '{"\\x00ff",NULL}',
  '{NaN,Infinity,-0,0.1}', '{"2025-01-01 00:00:00+00",NULL}', '{{1,2},{3,4}}',
  'it''s "quoted"', '{sad,"happy ☺"}', 12.5, '{x,y}',
  '10.0.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', '[1,10)', B'1010'),
 (2, -32768, 2147483647, -9223372036854775808, 4294967295,
  '123456789012345678901234567890.123456789012345678901234567890', '-0.0000000001',
  'Infinity', 'NaN', false, E'line1\nline2\ttab\\back "q" ☺ نص 漢字 \r end', '', 'abcde', '\x',
  'infinity', '00:00:00', '00:00:00-08', '-infinity', '-infinity', '-1 days +02:03:04',
  '00000000-0000-0000-0000-000000000000', 'null', 'null',
  '[0:1]={7,8}', '{}', '{-Infinity}', '{}', '{}', '{}', '{{NULL}}',
  'sad', '{}', 0.0001, '{}',
  '2001:db8::1/64', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', 'empty', B''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', '-0', NULL, NULL, NULL, NULL, NULL,
  '0044-03-15 BC', NULL, NULL, '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL),
 (4, 0, 0, 0, 0, 'NaN', '0', '3.4028235e38', '1e-320', NULL, 'x', NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, '2025-03-30 01:30:00+00', NULL, NULL, NULL, '{"k": [1, {"x": "y"}]}',
  NULL, NULL, NULL, NULL, '{4.9e-324,1.7976931348623157e308}', NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL);
