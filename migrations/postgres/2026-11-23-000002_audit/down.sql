-- For development databases only: this destroys the audit log.
DROP TABLE ferry_audit_log;
DROP TABLE ferry_audit_head;
DROP FUNCTION ferry_audit_extend_head();
DROP FUNCTION ferry_audit_head_for_append();
DROP FUNCTION ferry_audit_refuse();
