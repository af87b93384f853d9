/**
 * The names now live in firewall/names.ts; src/agent still imports these two
 * from here until its split lands, then this file goes.
 */
export { endpointIfnames, isSluiceHostIfname } from '../firewall/names';
