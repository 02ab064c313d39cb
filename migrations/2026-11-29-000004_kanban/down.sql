DROP TRIGGER IF EXISTS accounts_create_default_board ON accounts;
DROP FUNCTION IF EXISTS accounts_create_default_board();
DROP FUNCTION IF EXISTS create_default_board(uuid, text);
DROP TABLE IF EXISTS board_events, card_checklist_items, card_history, cards, stages, boards;
DROP FUNCTION IF EXISTS cards_search();
DROP FUNCTION IF EXISTS immutable_unaccent(text);
