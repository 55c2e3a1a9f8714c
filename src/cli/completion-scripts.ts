// The scripts `banger completion SHELL` prints. Each is a thin shim: it hands the words typed so far to
// `banger __complete` and shows what comes back (see completion-engine.ts for the format), so the commands,
// flags and names it offers always come from the installed banger itself: the one the line names
// (./bin/banger, ~/bin/banger, or banger from PATH), past any VAR=value in front of it.

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** The completion script for `shell`, ready to be sourced. */
export function completionScript(shell: Shell): string {
  switch (shell) {
    case 'bash':
      return BASH;
    case 'zsh':
      return ZSH;
    case 'fish':
      return FISH;
  }
}

// Needs no bash-completion package. The words come from COMP_LINE rather than COMP_WORDS, which bash splits at
// = and : (`--via=ag` would arrive as three words); what bash replaces is still only the text after the last
// of those, so the candidates lose what comes before it.
const BASH = `# bash completion for banger: source it (source <(banger completion bash)) or put it in
# /etc/bash_completion.d/banger. Candidates come from banger itself (banger __complete WORDS...).
_banger_complete() {
    local line=\${COMP_LINE:0:COMP_POINT}
    local -a words lines
    read -ra words <<<"$line"
    if [[ -z $line || $line == *[[:space:]] ]]; then words+=(""); fi
    while [[ \${words[0]-} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do words=("\${words[@]:1}"); done
    local cur=\${words[\${#words[@]}-1]} banger=\${words[0]-banger}
    [[ $banger == "~/"* ]] && banger=$HOME/\${banger#"~/"}
    mapfile -t lines < <("$banger" __complete "\${words[@]:1}" 2>/dev/null)
    local breaks=\${COMP_WORDBREAKS//[^=:]/} head=
    if [[ -n $breaks && $cur == *[$breaks]* ]]; then head=\${cur%"\${cur##*[$breaks]}"}; fi
    COMPREPLY=()
    local entry
    for entry in "\${lines[@]:1}"; do
        entry=\${entry%%$'\\t'*}
        COMPREPLY+=("\${entry#"$head"}")
    done
    case \${lines[0]-} in
        files) compopt -o filenames 2>/dev/null; mapfile -t -O \${#COMPREPLY[@]} COMPREPLY < <(compgen -f -- "\${cur#"$head"}") ;;
        dirs) compopt -o filenames 2>/dev/null; mapfile -t -O \${#COMPREPLY[@]} COMPREPLY < <(compgen -d -- "\${cur#"$head"}") ;;
    esac
}
complete -F _banger_complete banger
`;

// Works sourced after compinit (source <(banger completion zsh)) and as an autoloaded _banger file in $fpath.
const ZSH = `#compdef banger
# zsh completion for banger: source it after compinit (source <(banger completion zsh)) or save it as _banger
# in a directory of $fpath. Candidates come from banger itself (banger __complete WORDS...).
_banger() {
    local -a lines matches
    local line kind ret=1 banger=\${(Q)words[1]}
    [[ $banger == '~/'* ]] && banger=$HOME/\${banger#'~/'}
    lines=("\${(@f)$("$banger" __complete "\${(@Q)words[2,CURRENT]}" 2>/dev/null)}")
    kind=\${lines[1]}
    for line in "\${(@)lines[2,-1]}"; do
        [[ -z $line ]] && continue
        if [[ $line == *$'\\t'* ]]; then
            matches+=("\${\${line%%$'\\t'*}//:/\\\\:}:\${line#*$'\\t'}")
        else
            matches+=("\${line//:/\\\\:}")
        fi
    done
    if (( \${#matches} )); then
        _describe -t banger-values 'banger' matches && ret=0
    fi
    if [[ $kind == (files|dirs) ]]; then
        [[ $PREFIX == --*=* ]] && compset -P '*='
        if [[ $kind == dirs ]]; then _files -/ && ret=0; else _files && ret=0; fi
    fi
    return ret
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
    _banger "$@"
elif (( \${+functions[compdef]} )); then
    compdef _banger banger
else
    print -u2 'banger completion: load the completion system first: autoload -Uz compinit && compinit'
fi
`;

const FISH = `# fish completion for banger: save it as ~/.config/fish/completions/banger.fish (or source it:
# banger completion fish | source). Candidates come from banger itself (banger __complete WORDS...).
function __banger_complete
    set -l words (commandline -opc)
    while string match -qr -- '^[A-Za-z_][A-Za-z0-9_]*=' "$words[1]"
        set -e words[1]
    end
    set -l banger (string replace -r -- '^~/' "$HOME/" "$words[1]")
    set -e words[1]
    set -l cur (commandline -ct)
    set -l lines ($banger __complete $words "$cur" 2>/dev/null)
    for line in $lines[2..-1]
        printf '%s\\n' $line
    end
    set -l prefix (string match -r -- '^--[^=]*=' "$cur")
    set -l value (string replace -r -- '^--[^=]*=' '' "$cur")
    switch "$lines[1]"
        case files
            for p in (__fish_complete_path "$value")
                printf '%s%s\\n' "$prefix" $p
            end
        case dirs
            for p in (__fish_complete_directories "$value")
                printf '%s%s\\n' "$prefix" $p
            end
    end
end
complete -c banger -e
complete -c banger -f -a '(__banger_complete)'
`;
