// The CommonJS entry, typed: `require('@stile/node')` is the client class.
import Stile = require('@stile/node');

const stile = new Stile('vk_test_x');
const byName = new Stile.Stile('vk_test_x');
const error: Stile.StileError = new Stile.StileInvalidRequestError('x');
void [stile.webhookEndpoints.list(), byName, error];
