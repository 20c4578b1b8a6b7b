// What the seeds' snippets use but do not define (your app's own handlers and inputs).
// The tests define them on globalThis before importing a snippet; the snippets
// themselves are copied verbatim.
declare function handleVerified(data: unknown): Promise<void>;
declare function handleFailed(data: unknown): Promise<void>;
declare function handleExpired(data: unknown): Promise<void>;
declare var rawBody: string;
declare var signatureHeader: string;
declare var webhookSecret: string;
