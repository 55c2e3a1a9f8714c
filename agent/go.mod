module banger/agent

go 1.19
