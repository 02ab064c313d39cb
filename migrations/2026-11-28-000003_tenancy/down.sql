DROP TABLE usage_active_users;
DROP TABLE usage_daily;
DROP TABLE team_members;
DROP TABLE teams;
DROP TRIGGER accounts_create_entitlements ON accounts;
DROP FUNCTION accounts_create_entitlements();
DROP TABLE account_entitlements;
DROP TABLE plans;
DROP FUNCTION uuid_v7();
