// A compose file that cannot be deployed: one line saying where and why.
import { CliError } from '../errors.js';

export class StackError extends CliError {
  override readonly name = 'StackError';
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}
