import { isHelpOrVersion, usageErrorLine } from './usage-error';

describe('usageErrorLine', () => {
  const line = (code: string, message: string) => usageErrorLine({ code, message });

  it('names the flag, the value and what is allowed, on one line', () => {
    expect(line('commander.invalidArgument', "error: option '--image-size <n>' argument '2048' is invalid. expected an integer from 32 to 1024")).toBe(
      '--image-size "2048": expected an integer from 32 to 1024',
    );
    expect(line('commander.invalidArgument', "error: option '--dtype <dtype>' argument 'float64' is invalid. Allowed choices are float32, float16.")).toBe(
      '--dtype "float64": allowed values are float32, float16',
    );
  });

  it('turns a typo into a suggestion, and keeps unknown words as they are', () => {
    expect(line('commander.unknownOption', "error: unknown option '--ouput'\n(Did you mean --output?)")).toBe('unknown option --ouput, did you mean --output?');
    expect(line('commander.unknownOption', "error: unknown option '--zzz'")).toBe('unknown option --zzz (--help lists the options)');
    expect(line('commander.unknownCommand', "error: unknown command 'sumbit'\n(Did you mean submit?)")).toBe('unknown command sumbit, did you mean submit?');
    expect(line('commander.missingArgument', "error: missing required argument 'source'")).toBe('missing <source>');
    expect(line('commander.optionMissingArgument', "error: option '--layer <spec...>' argument missing")).toBe('--layer needs a value: --layer <spec...>');
    expect(line('commander.excessArguments', "error: too many arguments for 'status'. Expected 1 argument but got 2.")).toBe(
      "too many arguments for 'status'. Expected 1 argument but got 2.",
    );
  });

  it('tells help and version apart from errors', () => {
    expect(isHelpOrVersion({ code: 'commander.helpDisplayed', message: '(outputHelp)' })).toBe(true);
    expect(isHelpOrVersion({ code: 'commander.version', message: '0.1.0' })).toBe(true);
    expect(isHelpOrVersion({ code: 'commander.unknownOption', message: '' })).toBe(false);
  });
});
