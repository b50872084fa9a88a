/**
 * Lint rules that keep the code in pieces a reader can hold: no function
 * longer than {@linkcode MAX_FUNCTION_LINES} lines and no source file longer
 * than {@linkcode MAX_FILE_LINES}, tests aside. Loaded by `deno lint`
 * through `deno.json`.
 *
 * @module
 */

/** Longest function (or method, or arrow function) allowed, in lines. */
export const MAX_FUNCTION_LINES = 80;
/** Longest source file allowed, in lines. */
export const MAX_FILE_LINES = 600;

function isTest(filename: string): boolean {
  return /(^|\/)tests\//.test(filename) || /_test\.ts$/.test(filename);
}

function linesOf(text: string, range: Deno.lint.Range): number {
  const [start, end] = range;
  let lines = 1;
  for (let at = start; at < end; at++) if (text.charCodeAt(at) === 10) lines++;
  return lines;
}

const plugin: Deno.lint.Plugin = {
  name: "ftv",
  rules: {
    "max-function-lines": {
      create(context) {
        if (isTest(context.filename)) return {};
        const check = (
          node:
            | Deno.lint.FunctionDeclaration
            | Deno.lint.FunctionExpression
            | Deno.lint.ArrowFunctionExpression,
        ) => {
          const lines = linesOf(context.sourceCode.text, node.range);
          if (lines > MAX_FUNCTION_LINES) {
            context.report({
              node,
              message:
                `Function has ${lines} lines; split it below ${MAX_FUNCTION_LINES}`,
            });
          }
        };
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
        };
      },
    },
    "max-file-lines": {
      create(context) {
        if (isTest(context.filename)) return {};
        return {
          Program(node) {
            const lines = context.sourceCode.text.split("\n").length;
            if (lines > MAX_FILE_LINES) {
              context.report({
                node,
                message:
                  `File has ${lines} lines; split it below ${MAX_FILE_LINES}`,
              });
            }
          },
        };
      },
    },
  },
};

export default plugin;
