import type { Command } from "commander";
import { CliError, out } from "../output.js";

interface Node {
  path: string[];
  subs: string[];
  options: string[];
}

/** Every command of the tree with its subcommands and options. */
function walk(cmd: Command, path: string[] = []): Node[] {
  const node = {
    path,
    subs: cmd.commands.map((c) => c.name()),
    options: cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)),
  };
  return [node, ...cmd.commands.flatMap((c) => walk(c, [...path, c.name()]))];
}

function bash(root: Command): string {
  const cases = walk(root)
    .map((n) => `    "${n.path.join(" ")}") words="${[...n.subs, ...n.options, "--help"].join(" ")}" ;;`)
    .join("\n");
  return `# meshagent bash completion: source <(meshagent completion bash)
_meshagent() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w words
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) case " $(_meshagent_words "\${path# }") " in *" $w "*) path="$path $w" ;; esac ;; esac
  done
  COMPREPLY=( $(compgen -W "$(_meshagent_words "\${path# }")" -- "$cur") )
}
_meshagent_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
complete -o default -F _meshagent meshagent
`;
}

function zsh(root: Command): string {
  return `#compdef meshagent
# meshagent zsh completion: source <(meshagent completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash(root).replace(/^# .*\n/, "")}`;
}

function fish(root: Command): string {
  const lines = ["# meshagent fish completion: meshagent completion fish | source", "complete -c meshagent -f"];
  for (const n of walk(root)) {
    const cond = n.path.length === 0 ? "__fish_use_subcommand" : `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}`;
    for (const s of n.subs) lines.push(`complete -c meshagent -n '${cond}' -a ${s}`);
    for (const o of n.options.filter((x) => x.startsWith("--"))) lines.push(`complete -c meshagent -n '${cond}' -l ${o.slice(2)}`);
  }
  return lines.join("\n") + "\n";
}

export function registerCompletion(program: Command) {
  program
    .command("completion <shell>")
    .description("print a completion script for bash, zsh or fish")
    .action((shell: string) => {
      const make = { bash, zsh, fish }[shell];
      if (!make) throw new CliError(`no completion for ${shell}`, "usage", "meshagent completion bash|zsh|fish", 2);
      out(make(program));
    });
}
