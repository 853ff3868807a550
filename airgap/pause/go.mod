module plinth.local/pause

go 1.22
