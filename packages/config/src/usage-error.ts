/** What a command-line parser error carries (commander's `CommanderError`). */
export interface ParserError {
  code: string;
  message: string;
  exitCode?: number;
}

/** Codes of commander "errors" that are not errors: help or the version was printed. */
const NOT_ERRORS = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/** Whether a parser "error" only says that help or the version was printed (exit 0). */
export function isHelpOrVersion(err: ParserError): boolean {
  return NOT_ERRORS.has(err.code);
}

/** `--image-size <n>` -> `--image-size` */
function flagName(flags: string): string {
  return (flags.split(/[ ,|]+/).find((f) => f.startsWith('--')) ?? flags).trim();
}

/**
 * A command-line parser error as one readable line naming the flag, the value and what is allowed:
 * `--image-size 2048: expected an integer from 32 to 1024`, `unknown option --ouput, did you mean --output?`,
 * `missing --output <uri>`. Anything it does not recognise keeps commander's words, on one line.
 */
export function usageErrorLine(err: ParserError): string {
  const text = err.message.replace(/^error: /, '').trim();
  const suggestion = /\n\(Did you mean (.+)\?\)$/.exec(text);
  const head = (suggestion ? text.slice(0, suggestion.index) : text).replace(/\s*\n\s*/g, ' ');
  const hint = suggestion ? `, did you mean ${suggestion[1]}?` : '';
  let m: RegExpExecArray | null;
  if ((m = /^option '([^']+)' argument '(.*)' is invalid\. (.*)$/s.exec(head))) {
    const [, flags = '', value = '', why = ''] = m;
    return `${flagName(flags)} ${JSON.stringify(value)}: ${why.replace(/^Allowed choices are (.*)\.$/, 'allowed values are $1')}`;
  }
  if ((m = /^unknown option '([^']+)'$/.exec(head))) return `unknown option ${m[1]}${hint || ' (--help lists the options)'}`;
  if ((m = /^unknown command '([^']+)'$/.exec(head))) return `unknown command ${m[1]}${hint || ' (--help lists the commands)'}`;
  if ((m = /^required option '([^']+)' not specified$/.exec(head))) return `missing ${m[1]}`;
  if ((m = /^option '([^']+)' argument missing$/.exec(head))) return `${flagName(m[1] ?? '')} needs a value: ${m[1]}`;
  if ((m = /^missing required argument '([^']+)'$/.exec(head))) return `missing <${m[1]}>`;
  return `${head}${hint}`;
}
