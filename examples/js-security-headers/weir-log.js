// The host's log, tagged with this plugin's name.
import { log as hostLog } from 'weir:plugin/log@0.5.0';

export const level = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error' };

export function log(lvl, message) {
  hostLog(lvl, message);
}
