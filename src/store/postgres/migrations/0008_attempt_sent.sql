-- The method, URL and body an endpoint's transformation made for an attempt, as JSON
-- (`SentRequest`, its body sealed with the payload key); NULL for an attempt that sent
-- the event's body to the endpoint's URL, and for every attempt made before.
ALTER TABLE attempts ADD COLUMN sent jsonb;
