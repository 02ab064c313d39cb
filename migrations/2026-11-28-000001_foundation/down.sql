DROP TABLE sessions;
DROP TRIGGER users_super_admin_only_in_platform ON users;
DROP FUNCTION users_super_admin_only_in_platform();
DROP TABLE users;
DROP TABLE accounts;
-- The citext extension and the whatpro_app role are left in place: other databases of the
-- cluster may use them.
