_fscryptfs() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="fscryptfs"
                ;;
            fscryptfs,add-key)
                cmd="fscryptfs__subcmd__add__subcmd__key"
                ;;
            fscryptfs,add_key)
                cmd="fscryptfs__subcmd__add__subcmd__key"
                ;;
            fscryptfs,completions)
                cmd="fscryptfs__subcmd__completions"
                ;;
            fscryptfs,crypt)
                cmd="fscryptfs__subcmd__crypt"
                ;;
            fscryptfs,encrypt)
                cmd="fscryptfs__subcmd__encrypt"
                ;;
            fscryptfs,fsck)
                cmd="fscryptfs__subcmd__fsck"
                ;;
            fscryptfs,generate-docs)
                cmd="fscryptfs__subcmd__generate__subcmd__docs"
                ;;
            fscryptfs,get-nonce)
                cmd="fscryptfs__subcmd__get__subcmd__nonce"
                ;;
            fscryptfs,get-policy)
                cmd="fscryptfs__subcmd__get__subcmd__policy"
                ;;
            fscryptfs,get_nonce)
                cmd="fscryptfs__subcmd__get__subcmd__nonce"
                ;;
            fscryptfs,get_policy)
                cmd="fscryptfs__subcmd__get__subcmd__policy"
                ;;
            fscryptfs,help)
                cmd="fscryptfs__subcmd__help"
                ;;
            fscryptfs,init)
                cmd="fscryptfs__subcmd__init"
                ;;
            fscryptfs,inspect)
                cmd="fscryptfs__subcmd__inspect"
                ;;
            fscryptfs,key-status)
                cmd="fscryptfs__subcmd__key__subcmd__status"
                ;;
            fscryptfs,key_status)
                cmd="fscryptfs__subcmd__key__subcmd__status"
                ;;
            fscryptfs,lock)
                cmd="fscryptfs__subcmd__lock"
                ;;
            fscryptfs,metadata)
                cmd="fscryptfs__subcmd__metadata"
                ;;
            fscryptfs,mount)
                cmd="fscryptfs__subcmd__mount"
                ;;
            fscryptfs,pam)
                cmd="fscryptfs__subcmd__pam"
                ;;
            fscryptfs,remove-key)
                cmd="fscryptfs__subcmd__remove__subcmd__key"
                ;;
            fscryptfs,remove_key)
                cmd="fscryptfs__subcmd__remove__subcmd__key"
                ;;
            fscryptfs,set-policy)
                cmd="fscryptfs__subcmd__set__subcmd__policy"
                ;;
            fscryptfs,set_policy)
                cmd="fscryptfs__subcmd__set__subcmd__policy"
                ;;
            fscryptfs,setup)
                cmd="fscryptfs__subcmd__setup"
                ;;
            fscryptfs,status)
                cmd="fscryptfs__subcmd__status"
                ;;
            fscryptfs,unlock)
                cmd="fscryptfs__subcmd__unlock"
                ;;
            fscryptfs__subcmd__help,add-key)
                cmd="fscryptfs__subcmd__help__subcmd__add__subcmd__key"
                ;;
            fscryptfs__subcmd__help,completions)
                cmd="fscryptfs__subcmd__help__subcmd__completions"
                ;;
            fscryptfs__subcmd__help,crypt)
                cmd="fscryptfs__subcmd__help__subcmd__crypt"
                ;;
            fscryptfs__subcmd__help,encrypt)
                cmd="fscryptfs__subcmd__help__subcmd__encrypt"
                ;;
            fscryptfs__subcmd__help,fsck)
                cmd="fscryptfs__subcmd__help__subcmd__fsck"
                ;;
            fscryptfs__subcmd__help,generate-docs)
                cmd="fscryptfs__subcmd__help__subcmd__generate__subcmd__docs"
                ;;
            fscryptfs__subcmd__help,get-nonce)
                cmd="fscryptfs__subcmd__help__subcmd__get__subcmd__nonce"
                ;;
            fscryptfs__subcmd__help,get-policy)
                cmd="fscryptfs__subcmd__help__subcmd__get__subcmd__policy"
                ;;
            fscryptfs__subcmd__help,help)
                cmd="fscryptfs__subcmd__help__subcmd__help"
                ;;
            fscryptfs__subcmd__help,init)
                cmd="fscryptfs__subcmd__help__subcmd__init"
                ;;
            fscryptfs__subcmd__help,inspect)
                cmd="fscryptfs__subcmd__help__subcmd__inspect"
                ;;
            fscryptfs__subcmd__help,key-status)
                cmd="fscryptfs__subcmd__help__subcmd__key__subcmd__status"
                ;;
            fscryptfs__subcmd__help,lock)
                cmd="fscryptfs__subcmd__help__subcmd__lock"
                ;;
            fscryptfs__subcmd__help,metadata)
                cmd="fscryptfs__subcmd__help__subcmd__metadata"
                ;;
            fscryptfs__subcmd__help,mount)
                cmd="fscryptfs__subcmd__help__subcmd__mount"
                ;;
            fscryptfs__subcmd__help,pam)
                cmd="fscryptfs__subcmd__help__subcmd__pam"
                ;;
            fscryptfs__subcmd__help,remove-key)
                cmd="fscryptfs__subcmd__help__subcmd__remove__subcmd__key"
                ;;
            fscryptfs__subcmd__help,set-policy)
                cmd="fscryptfs__subcmd__help__subcmd__set__subcmd__policy"
                ;;
            fscryptfs__subcmd__help,setup)
                cmd="fscryptfs__subcmd__help__subcmd__setup"
                ;;
            fscryptfs__subcmd__help,status)
                cmd="fscryptfs__subcmd__help__subcmd__status"
                ;;
            fscryptfs__subcmd__help,unlock)
                cmd="fscryptfs__subcmd__help__subcmd__unlock"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,data)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__data"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,extent-data)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__extent__subcmd__data"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,extents)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__extents"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,inode)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__inode"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,ls)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__ls"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,name)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__name"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,symlink)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__symlink"
                ;;
            fscryptfs__subcmd__help__subcmd__inspect,volume)
                cmd="fscryptfs__subcmd__help__subcmd__inspect__subcmd__volume"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,add-protector-to-policy)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,change-passphrase)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__change__subcmd__passphrase"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,create)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__create"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,destroy)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__destroy"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,dump)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__dump"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata,remove-protector-from-policy)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata__subcmd__create,policy)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__create__subcmd__policy"
                ;;
            fscryptfs__subcmd__help__subcmd__metadata__subcmd__create,protector)
                cmd="fscryptfs__subcmd__help__subcmd__metadata__subcmd__create__subcmd__protector"
                ;;
            fscryptfs__subcmd__inspect,data)
                cmd="fscryptfs__subcmd__inspect__subcmd__data"
                ;;
            fscryptfs__subcmd__inspect,extent-data)
                cmd="fscryptfs__subcmd__inspect__subcmd__extent__subcmd__data"
                ;;
            fscryptfs__subcmd__inspect,extents)
                cmd="fscryptfs__subcmd__inspect__subcmd__extents"
                ;;
            fscryptfs__subcmd__inspect,help)
                cmd="fscryptfs__subcmd__inspect__subcmd__help"
                ;;
            fscryptfs__subcmd__inspect,inode)
                cmd="fscryptfs__subcmd__inspect__subcmd__inode"
                ;;
            fscryptfs__subcmd__inspect,ls)
                cmd="fscryptfs__subcmd__inspect__subcmd__ls"
                ;;
            fscryptfs__subcmd__inspect,name)
                cmd="fscryptfs__subcmd__inspect__subcmd__name"
                ;;
            fscryptfs__subcmd__inspect,symlink)
                cmd="fscryptfs__subcmd__inspect__subcmd__symlink"
                ;;
            fscryptfs__subcmd__inspect,volume)
                cmd="fscryptfs__subcmd__inspect__subcmd__volume"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,data)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__data"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,extent-data)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__extent__subcmd__data"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,extents)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__extents"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,help)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__help"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,inode)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__inode"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,ls)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__ls"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,name)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__name"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,symlink)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__symlink"
                ;;
            fscryptfs__subcmd__inspect__subcmd__help,volume)
                cmd="fscryptfs__subcmd__inspect__subcmd__help__subcmd__volume"
                ;;
            fscryptfs__subcmd__metadata,add-protector-to-policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata,change-passphrase)
                cmd="fscryptfs__subcmd__metadata__subcmd__change__subcmd__passphrase"
                ;;
            fscryptfs__subcmd__metadata,create)
                cmd="fscryptfs__subcmd__metadata__subcmd__create"
                ;;
            fscryptfs__subcmd__metadata,destroy)
                cmd="fscryptfs__subcmd__metadata__subcmd__destroy"
                ;;
            fscryptfs__subcmd__metadata,dump)
                cmd="fscryptfs__subcmd__metadata__subcmd__dump"
                ;;
            fscryptfs__subcmd__metadata,help)
                cmd="fscryptfs__subcmd__metadata__subcmd__help"
                ;;
            fscryptfs__subcmd__metadata,remove-protector-from-policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create,help)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__help"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create,policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create,protector)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__protector"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create__subcmd__help,help)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__help"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create__subcmd__help,policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__create__subcmd__help,protector)
                cmd="fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__protector"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,add-protector-to-policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,change-passphrase)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__change__subcmd__passphrase"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,create)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__create"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,destroy)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__destroy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,dump)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__dump"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,help)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__help"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help,remove-protector-from-policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help__subcmd__create,policy)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__create__subcmd__policy"
                ;;
            fscryptfs__subcmd__metadata__subcmd__help__subcmd__create,protector)
                cmd="fscryptfs__subcmd__metadata__subcmd__help__subcmd__create__subcmd__protector"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        fscryptfs)
            opts="-h -V --help --version crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key add_key remove-key remove_key key-status key_status set-policy set_policy get-policy get_policy get-nonce get_nonce help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__add__subcmd__key)
            opts="-h --descriptor --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --descriptor)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__completions)
            opts="-h --help bash elvish fish powershell zsh"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__crypt)
            opts="-h --decrypt --dump-key-identifier --data-unit-size --data-unit-index --padding --kdf --mode-num --file-nonce --inode-number --fs-uuid --direct-key --iv-ino-lblk-64 --iv-ino-lblk-32 --extent-nonce --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --data-unit-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --data-unit-index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --padding)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --kdf)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mode-num)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --file-nonce)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --inode-number)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fs-uuid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extent-nonce)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__encrypt)
            opts="-h --policy --protector --unlock-with --source --name --key --passphrase-file --extpass --skip-unlock --no-recovery --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unlock-with)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --source)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__fsck)
            opts="-q -h --quiet --force --repair --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__generate__subcmd__docs)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__get__subcmd__nonce)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__get__subcmd__policy)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help)
            opts="crypt init mount setup encrypt unlock lock status metadata pam completions generate-docs inspect fsck add-key remove-key key-status set-policy get-policy get-nonce help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__add__subcmd__key)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__completions)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__crypt)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__encrypt)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__fsck)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__generate__subcmd__docs)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__get__subcmd__nonce)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__get__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__init)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect)
            opts="volume inode ls name data extents extent-data symlink"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__data)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__extent__subcmd__data)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__extents)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__inode)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__ls)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__name)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__symlink)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__inspect__subcmd__volume)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__key__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__lock)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata)
            opts="create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__change__subcmd__passphrase)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__create)
            opts="protector policy"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__create__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__create__subcmd__protector)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__destroy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__dump)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__metadata__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__mount)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__pam)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__remove__subcmd__key)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__set__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__setup)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__help__subcmd__unlock)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__init)
            opts="-h --removal --contents-layout --encrypt --name --key --passphrase-file --extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --removal)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --contents-layout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect)
            opts="-h --force --help volume inode ls name data extents extent-data symlink help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__data)
            opts="-h --ino --raw --skip-holes --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__extent__subcmd__data)
            opts="-h --ino --index --raw --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__extents)
            opts="-h --ino --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help)
            opts="volume inode ls name data extents extent-data symlink help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__data)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__extent__subcmd__data)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__extents)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__inode)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__ls)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__name)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__symlink)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__help__subcmd__volume)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__inode)
            opts="-h --ino --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__ls)
            opts="-h --ino --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__name)
            opts="-h --raw --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__symlink)
            opts="-h --ino --raw --with-length --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ino)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__inspect__subcmd__volume)
            opts="-h --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__key__subcmd__status)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__lock)
            opts="-h --all-users --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata)
            opts="-h --help create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy)
            opts="-h --protector --policy --unlock-with --key --passphrase-file --extpass --unlock-key --unlock-passphrase-file --unlock-extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unlock-with)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unlock-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unlock-passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unlock-extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__change__subcmd__passphrase)
            opts="-h --protector --old-passphrase-file --new-passphrase-file --old-extpass --new-extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --old-passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --new-passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --old-extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --new-extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create)
            opts="-h --help protector policy help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__help)
            opts="protector policy help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__help__subcmd__protector)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__policy)
            opts="-h --protector --key --passphrase-file --extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__create__subcmd__protector)
            opts="-h --source --name --key --passphrase-file --extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --source)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__destroy)
            opts="-h --protector --policy --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__dump)
            opts="-h --protector --policy --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help)
            opts="create destroy change-passphrase add-protector-to-policy remove-protector-from-policy dump help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__add__subcmd__protector__subcmd__to__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__change__subcmd__passphrase)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__create)
            opts="protector policy"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__create__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__create__subcmd__protector)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__destroy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__dump)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__help__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__metadata__subcmd__remove__subcmd__protector__subcmd__from__subcmd__policy)
            opts="-h --protector --policy --force --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --protector)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__mount)
            opts="-f -o -h --ready-stdout --detach --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__pam)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__remove__subcmd__key)
            opts="-h --all-users --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__set__subcmd__policy)
            opts="-h --contents --filenames --padding --direct-key --iv-ino-lblk-64 --iv-ino-lblk-32 --data-unit-size --v1 --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --contents)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --filenames)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --padding)
                    COMPREPLY=($(compgen -W "4 8 16 32" -- "${cur}"))
                    return 0
                    ;;
                --data-unit-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__setup)
            opts="-h --time --force --all-users --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --time)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__status)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fscryptfs__subcmd__unlock)
            opts="-h --unlock-with --key --passphrase-file --extpass --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --unlock-with)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passphrase-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --extpass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _fscryptfs -o nosort -o bashdefault -o default fscryptfs
else
    complete -F _fscryptfs -o bashdefault -o default fscryptfs
fi
